// How large one request message may be, per method. grpc-js has one receive limit for the whole server,
// and the switch's must fit an operator's CSV import (server.ts: 9 MiB). grpc-js buffers a message until
// its last byte has come, and health, reflection and PosService/AuthorizeStream read before anyone is
// authenticated (the stream checks each message's terminal): one connection opening 1,000 streams, each
// announcing a 9 MiB message and never sending its last byte, held 9 GiB of the switch's memory without
// credentials (40 streams held 320 MiB: test/oversized.test.ts, "partial messages"). So every method but
// AdminService's (read only once an operator is authenticated, gate.ts) accepts at most
// MAX_REQUEST_BYTES, refused RESOURCE_EXHAUSTED as soon as a message's length prefix says more.
//
// grpc-js 1.14 takes the limit from the server's options only; the call the first interceptor is given
// is grpc-js's own (BaseServerInterceptingCall), whose decoder keeps the limit in a field, so this sets
// it per call before any byte is read (the stream is paused until the handler reads). Where that shape
// is not found (another grpc-js version) the call keeps the server's limit, a warning says so once, and
// test/oversized.test.ts fails so that whoever upgrades grpc-js looks again.
import type { ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor, ServerMethodDefinition } from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { IMPORT_TOO_LARGE_MESSAGE } from '../data/import.js';

/** The largest request of a terminal RPC is a few hundred bytes; health and reflection requests are smaller still. */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** Methods that keep the server's limit: AdminService's (the CSV imports), read only after the operator is known. */
const LARGE_REQUEST_PREFIX = '/cardswitch.v1.AdminService/';

/** The receive limit of the call grpc-js made, where found: its decoder's and the one its decompression checks. */
interface GrpcJsCall {
  decoder?: { maxReadMessageLength?: unknown };
  maxReceiveMessageSize?: unknown;
}

/** Sets the largest message the call accepts; false when the call is not in the shape grpc-js 1.14 gives it. */
export function limitReceive(call: object, bytes: number): boolean {
  const c = call as GrpcJsCall;
  if (c.decoder === undefined || typeof c.decoder.maxReadMessageLength !== 'number' || typeof c.maxReceiveMessageSize !== 'number') {
    return false;
  }
  c.decoder.maxReadMessageLength = bytes;
  c.maxReceiveMessageSize = bytes;
  return true;
}

/** The CSV imports: a file over the receive limit is refused with the import's own message, not grpc-js's. */
const IMPORT_PATHS: ReadonlySet<string> = new Set([
  '/cardswitch.v1.AdminService/ImportCardholders',
  '/cardswitch.v1.AdminService/ImportTerminals',
]);

/**
 * grpc-js refuses a message over the receive limit with its own English text ("Received message larger than
 * max (N vs. M)", or "... decompresses to a size larger than M"), which does not say to split the file. Its
 * call sends that status through its own sendStatus (this.sendStatus): an instance property of the same name
 * is called instead, and says IMPORT_TOO_LARGE_MESSAGE, as the handler does for a file over the limit that
 * did fit in the message (card-handlers.ts): one limit, one message.
 */
export function explainOverLimit(call: ServerInterceptingCallInterface, details: string): void {
  const send = call.sendStatus.bind(call);
  call.sendStatus = (status) => {
    if (status.code === Status.RESOURCE_EXHAUSTED && / larger than /.test(status.details)) send({ ...status, details });
    else send(status);
  };
}

/** The first interceptor of the server: every call but AdminService's accepts at most MAX_REQUEST_BYTES. */
export function receiveLimitInterceptor(log: Logger): ServerInterceptor {
  let warned = false;
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    // A prefix test, not a split: this runs on every call of the hot path.
    if (!method.path.startsWith(LARGE_REQUEST_PREFIX)) {
      if (!limitReceive(call, MAX_REQUEST_BYTES) && !warned) {
        warned = true;
        log.warn({ path: method.path }, `cannot limit requests to ${MAX_REQUEST_BYTES} bytes: grpc-js's call has another shape`);
      }
    } else if (IMPORT_PATHS.has(method.path)) {
      explainOverLimit(call, IMPORT_TOO_LARGE_MESSAGE);
    }
    return call as ServerInterceptingCall;
  };
}
