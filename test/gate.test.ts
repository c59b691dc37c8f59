// The authenticating interceptors' gate (switch/grpc/gate.ts), on a real grpc-js server: the handler runs
// only after the check has passed, with everything the caller sent before that; a refusal, a failed
// check or a caller who left while the check was running never reaches the handler.
import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status as Status,
  type ServerInterceptingCallInterface,
  type ServerMethodDefinition,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { gateCall, type GateCheck } from '../switch/grpc/gate.js';
import { bytes, bytesMethod } from './helpers/bytes-service.js';

const SERVICE: ServiceDefinition = {
  Echo: bytesMethod('/test.Gate/Echo'),
  Join: bytesMethod('/test.Gate/Join', true),
};

/** A check the test decides: each call's verdict waits until the test settles it. */
class Checks {
  readonly waiting: { metadata: Metadata; settle: (status: ReturnType<GateCheck>) => void; fail: (err: Error) => void }[] = [];
  private arrived: (() => void) | undefined;
  readonly check: GateCheck = (metadata) =>
    new Promise((resolve, reject) => {
      this.waiting.push({ metadata, settle: (s) => resolve(s), fail: reject });
      this.arrived?.();
    });
  async next(): Promise<(typeof this.waiting)[number]> {
    while (this.waiting.length === 0) await new Promise<void>((resolve) => (this.arrived = resolve));
    return this.waiting.shift()!;
  }
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

async function serve(
  check: GateCheck,
): Promise<{ client: Client; handled: string[]; cancelledInHandler: string[]; serverSawCancel: () => Promise<void> }> {
  const handled: string[] = [];
  const cancelledInHandler: string[] = [];
  let sawCancel: () => void = () => undefined;
  const cancelSeen = new Promise<void>((resolve) => (sawCancel = resolve));
  const server = new Server({
    interceptors: [
      // Next to the transport (grpc-js chains the first interceptor innermost): tells the test when the
      // server has seen a cancellation, which it passes on to the gate in the same turn.
      (_method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) =>
        new ServerInterceptingCall(call, { start: (next) => next(new ServerListenerBuilder().withOnCancel(() => sawCancel()).build()) }),
      (_method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) =>
        gateCall(call, check, (err) => ({ code: Status.INTERNAL, details: `check failed: ${(err as Error).message}` })),
    ],
  });
  server.addService(SERVICE, {
    Echo: (call: { request: Buffer; cancelled: boolean }, callback: (err: null, res: Buffer) => void) => {
      handled.push(`echo ${call.request.toString()}`);
      callback(null, call.request);
    },
    Join: (
      call: NodeJS.ReadableStream & { cancelled: boolean; on: (e: string, f: (...a: unknown[]) => void) => void },
      callback: (err: null, res: Buffer) => void,
    ) => {
      const parts: string[] = [];
      call.on('data', (b) => parts.push(String(b)));
      call.on('cancelled', () => cancelledInHandler.push('join'));
      call.on('end', () => {
        handled.push(`join ${parts.join('+')}`);
        callback(null, Buffer.from(parts.join('+')));
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  stops.push(() => {
    client.close();
    server.forceShutdown();
  });
  return { client, handled, cancelledInHandler, serverSawCancel: () => cancelSeen };
}

function echo(client: Client, text: string, metadata = new Metadata()): { result: Promise<Buffer>; cancel: () => void } {
  let cancel = (): void => undefined;
  const result = new Promise<Buffer>((resolve, reject) => {
    const call = client.makeUnaryRequest(
      '/test.Gate/Echo',
      bytes.serialize,
      bytes.deserialize,
      Buffer.from(text),
      metadata,
      (err: ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!)),
    );
    cancel = () => call.cancel();
  });
  return { result, cancel };
}

describe('gateCall', () => {
  it('runs the handler only once the check has passed, with the metadata the check saw', async () => {
    const checks = new Checks();
    const { client, handled } = await serve(checks.check);
    const metadata = new Metadata();
    metadata.set('who', 'pos-1');
    const call = echo(client, 'hello', metadata);
    const pending = await checks.next();
    expect(pending.metadata.get('who')).toEqual(['pos-1']);
    expect(handled).toEqual([]);
    pending.settle(undefined);
    expect((await call.result).toString()).toBe('hello');
    expect(handled).toEqual(['echo hello']);
  });

  it('delivers every message and the half-close that came while the check was running, in order', async () => {
    const checks = new Checks();
    const { client, handled } = await serve(checks.check);
    const answer = new Promise<Buffer>((resolve, reject) => {
      const stream = client.makeClientStreamRequest(
        '/test.Gate/Join',
        bytes.serialize,
        bytes.deserialize,
        new Metadata(),
        (err: ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!)),
      );
      for (const part of ['a', 'b', 'c']) stream.write(Buffer.from(part));
      stream.end();
    });
    const pending = await checks.next();
    expect(handled).toEqual([]);
    pending.settle(undefined);
    expect((await answer).toString()).toBe('a+b+c');
    expect(handled).toEqual(['join a+b+c']);
  });

  it('answers a refusal with its status, synchronous or not, and never runs the handler', async () => {
    const sync = await serve(() => ({ code: Status.UNAUTHENTICATED, details: 'who are you?' }));
    await expect(echo(sync.client, 'x').result).rejects.toMatchObject({ code: Status.UNAUTHENTICATED, details: 'who are you?' });
    expect(sync.handled).toEqual([]);

    const checks = new Checks();
    const later = await serve(checks.check);
    const call = echo(later.client, 'y');
    (await checks.next()).settle({ code: Status.PERMISSION_DENIED, details: 'not this service' });
    await expect(call.result).rejects.toMatchObject({ code: Status.PERMISSION_DENIED, details: 'not this service' });
    expect(later.handled).toEqual([]);
  });

  it('answers a check that throws or rejects with the failure status, and never runs the handler', async () => {
    const throwing = await serve(() => {
      throw new Error('registry broken');
    });
    await expect(echo(throwing.client, 'x').result).rejects.toMatchObject({
      code: Status.INTERNAL,
      details: 'check failed: registry broken',
    });
    const checks = new Checks();
    const rejecting = await serve(checks.check);
    const call = echo(rejecting.client, 'y');
    (await checks.next()).fail(new Error('redis down'));
    await expect(call.result).rejects.toMatchObject({ code: Status.INTERNAL, details: 'check failed: redis down' });
    expect([...throwing.handled, ...rejecting.handled]).toEqual([]);
  });

  it('never runs the handler for a caller who left while the check was running', async () => {
    const checks = new Checks();
    const { client, handled, serverSawCancel } = await serve(checks.check);
    const call = echo(client, 'gone');
    const pending = await checks.next();
    call.cancel();
    await expect(call.result).rejects.toMatchObject({ code: Status.CANCELLED });
    await serverSawCancel();
    pending.settle(undefined);
    // A later call on the same connection is answered, so the gate has finished with the first.
    const after = echo(client, 'after');
    (await checks.next()).settle(undefined);
    expect((await after.result).toString()).toBe('after');
    expect(handled).toEqual(['echo after']);
  });
});
