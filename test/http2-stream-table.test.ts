// The stream table that replaces node:http2's per-session Map (switch/grpc/http2-stream-table.ts): on
// this Node it is installed through the gate every switch call passes, calls work through it (300 at
// once), it empties as they finish, and a session destroyed with streams open still ends each of them.
// The table itself: test/id-table.test.ts.
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServerInterceptingCallInterface,
  type ServerMethodDefinition,
  type ServiceDefinition,
  type ServiceError,
  status as Status,
} from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { gateCall } from '../switch/grpc/gate.js';
import { sessionOfCall, StreamTable, useStreamTable } from '../switch/grpc/http2-stream-table.js';
import { bytes, bytesMethod } from './helpers/bytes-service.js';

const SERVICE: ServiceDefinition = { Echo: bytesMethod('/test.Table/Echo') };

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

/** The session's stream map as node:http2 sees it. */
function streamsOf(session: http2.Http2Session): unknown {
  const key = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state')!;
  return (session as unknown as Record<symbol, { streams: unknown } | undefined>)[key]?.streams;
}

async function until(done: () => boolean): Promise<void> {
  const started = Date.now();
  while (!done()) {
    if (Date.now() - started > 10_000) throw new Error('condition not reached within 10 s');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('the gate installs the table on the switch sessions', () => {
  it('answers 300 parallel calls through it, and it empties once they are done', async () => {
    const sessions = new Set<http2.Http2Session>();
    const server = new Server({
      interceptors: [
        (_method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
          const session = sessionOfCall(call);
          if (session !== undefined) sessions.add(session);
          return gateCall(
            call,
            () => undefined,
            () => ({ code: Status.INTERNAL, details: 'unexpected' }),
          );
        },
      ],
    });
    server.addService(SERVICE, {
      Echo: (call: { request: Buffer }, callback: (err: ServiceError | null, value?: Buffer) => void) =>
        setImmediate(() => callback(null, call.request)),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    stops.push(() => server.forceShutdown());
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    stops.push(() => client.close());
    const echo = (n: number) =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          '/test.Table/Echo',
          bytes.serialize,
          bytes.deserialize,
          Buffer.from(`call ${n}`),
          new Metadata(),
          (err, value) => (err ? reject(err) : resolve(value!)),
        ),
      );
    const answers = await Promise.all(Array.from({ length: 300 }, (_, n) => echo(n)));
    expect(answers.map((b) => b.toString())).toEqual(Array.from({ length: 300 }, (_, n) => `call ${n}`));
    expect(sessions.size).toBe(1);
    const [session] = [...sessions];
    const streams = streamsOf(session!);
    expect(streams).toBeInstanceOf(StreamTable);
    await until(() => (streams as StreamTable<unknown>).size === 0);
  });
});

describe('node:http2 with the table', () => {
  it('ends every open stream when the session is destroyed', async () => {
    const server = http2.createServer();
    const serverStreams: http2.ServerHttp2Stream[] = [];
    let installed = false;
    server.on('session', (session) => (installed = useStreamTable(session)));
    server.on('stream', (stream) => serverStreams.push(stream));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    stops.push(() => server.close());
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.on('error', () => undefined);
    stops.push(() => client.destroy());
    const requests = Array.from({ length: 10 }, () => {
      const request = client.request({ ':method': 'POST', ':path': '/open' });
      request.on('error', () => undefined);
      return request;
    });
    await until(() => serverStreams.length === 10);
    expect(installed).toBe(true);
    const session = serverStreams[0]!.session!;
    expect(streamsOf(session)).toBeInstanceOf(StreamTable);
    expect((streamsOf(session) as StreamTable<unknown>).size).toBe(10);
    const closed = serverStreams.map((stream) => once(stream, 'close'));
    session.destroy();
    await Promise.all(closed);
    expect(serverStreams.every((stream) => stream.destroyed)).toBe(true);
    expect((streamsOf(session) as StreamTable<unknown>).size).toBe(0);
    for (const request of requests) if (!request.closed) await once(request, 'close');
  });
});
