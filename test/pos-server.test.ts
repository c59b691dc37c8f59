// The gRPC server around PosService: grpc.health.v1, server reflection good enough for a client that
// has no proto files at all, and a graceful shutdown that answers every accepted call and loses no money.
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  Client,
  credentials,
  loadPackageDefinition,
  Metadata,
  status as Status,
  type ClientDuplexStream,
  type ClientReadableStream,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import type { AuthorizeInput, AuthorizeResult } from '../switch/ledger/ledger.js';
import { connect } from './helpers/redis.js';
import { openCard, POS_TERMINAL, readJournal, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const CARD_NO = '20230001';
const SERIAL = 'AB12CD34';
const OPENING_FEN = 500_000;
const POS_SERVICE = 'cardswitch.v1.PosService';

async function start(label: string, overrides: Record<string, string> = {}): Promise<SwitchApp> {
  const app = await startTestSwitch(label, overrides);
  onTestFinished(() => app.stop());
  await app.terminals.register(POS_TERMINAL);
  await openCard(app, CARD_NO, SERIAL, OPENING_FEN);
  return app;
}

function address(app: SwitchApp): string {
  return `127.0.0.1:${app.grpcPort}`;
}

/** A client class built by proto-loader from a .proto file that is not the switch's own API. */
function clientClass(protoFile: string, includeDir: string, serviceName: string): ServiceClientConstructor {
  const definition = loadSync(protoFile, {
    includeDirs: [includeDir],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  let node: unknown = loadPackageDefinition(definition);
  for (const part of serviceName.split('.')) node = (node as GrpcObject)[part];
  if (typeof node !== 'function') throw new Error(`${serviceName} not found in ${protoFile}`);
  return node as ServiceClientConstructor;
}

type UnaryMethod = (request: object, callback: (err: ServiceError | null, value?: unknown) => void) => void;

function unary<Res>(client: Client, method: string, request: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(client, request, (err, value) => (err ? reject(err) : resolve(value as Res)));
  });
}

function healthClient(app: SwitchApp): Client {
  const Health = clientClass(healthProtoPath, dirname(dirname(dirname(healthProtoPath))), 'grpc.health.v1.Health');
  const client = new Health(address(app), credentials.createInsecure());
  onTestFinished(() => client.close());
  return client;
}

async function healthStatus(client: Client, service: string): Promise<string> {
  return (await unary<{ status: string }>(client, 'check', { service })).status;
}

describe('health', () => {
  it('Check answers SERVING for the server and for PosService, NOT_FOUND for a service it does not have', async () => {
    const app = await start('health');
    const client = healthClient(app);

    expect(await healthStatus(client, '')).toBe('SERVING');
    expect(await healthStatus(client, POS_SERVICE)).toBe('SERVING');
    const err = await unary(client, 'check', { service: 'cardswitch.v1.NoSuchService' }).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(err?.code).toBe(Status.NOT_FOUND);
  });

  it('Watch of made-up service names, each ended by the client: SERVICE_UNKNOWN, and the switch keeps nothing of them', async () => {
    // Before: grpc-health-check kept an emptied watcher set per name ever watched, ~1.3 KB per
    // 1,000-character name here (13 MiB for these 10,000), for good and without credentials.
    const app = await start('healthwatch');
    const watch = (session: ClientHttp2Session, service: string): Promise<string> =>
      new Promise((resolve) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Watch',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        stream.on('error', () => undefined);
        stream.once('data', (chunk: Buffer) => resolve(chunk.subarray(5).toString('hex')));
        const request = protobuf.Writer.create()
          .uint32((1 << 3) | 2)
          .string(service)
          .finish();
        const framed = Buffer.alloc(5 + request.length);
        framed.writeUInt32BE(request.length, 1);
        framed.set(request, 5);
        stream.end(framed);
      });
    // 100 watches a connection, then the connection is dropped: each watch ends by the client's going.
    const watchAll = async (names: string[]): Promise<string[]> => {
      const session = http2Connect(`http://127.0.0.1:${app.grpcPort}`);
      session.on('error', () => undefined);
      const first = await Promise.all(names.map((name) => watch(session, name)));
      await new Promise<void>((resolve) => {
        session.once('close', () => resolve());
        session.destroy();
      });
      return first;
    };
    const SERVICE_UNKNOWN = '0803'; // HealthCheckResponse { status: SERVICE_UNKNOWN (3) }
    expect(await watchAll(Array.from({ length: 100 }, (_, i) => `warm-up-${i}`))).toEqual(
      Array.from({ length: 100 }, () => SERVICE_UNKNOWN),
    );
    expect(await watchAll([POS_SERVICE])).toEqual(['0801']); // SERVING: a served name is watched as before
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    for (let batch = 0; batch < 100; batch++) {
      const names = Array.from({ length: 100 }, (_, i) => `no.such.Service${batch * 100 + i}.${'x'.repeat(1000)}`);
      expect(new Set(await watchAll(names))).toEqual(new Set([SERVICE_UNKNOWN]));
    }
    collectGarbage();
    expect((process.memoryUsage().heapUsed - before) / 2 ** 20).toBeLessThan(4);
  });
});

// --- server reflection: the client below knows only the reflection protocol's own proto ---------------

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

/** One request on the bidirectional ServerReflectionInfo stream, one answer back. */
class ReflectionSession {
  private readonly stream: ClientDuplexStream<object, ReflectionResponse>;
  private readonly waiting: ((response: ReflectionResponse) => void)[] = [];
  private failure: Error | undefined;

  constructor(client: Client) {
    const open = (client as unknown as Record<string, () => ClientDuplexStream<object, ReflectionResponse>>)['serverReflectionInfo'];
    if (open === undefined) throw new Error('no serverReflectionInfo method');
    this.stream = open.call(client);
    this.stream.on('data', (response: ReflectionResponse) => this.waiting.shift()?.(response));
    this.stream.on('error', (err: Error) => (this.failure = err));
  }

  ask(request: object): Promise<ReflectionResponse> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push(resolve);
      this.stream.once('error', reject);
      this.stream.write({ host: '', ...request });
    });
  }

  close(): void {
    this.stream.end();
  }
}

function reflectionClient(app: SwitchApp, version: 'v1' | 'v1alpha' = 'v1'): Client {
  const packageRoot = dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json'));
  const protoDir = join(packageRoot, 'build', 'proto');
  const Reflection = clientClass(
    join(protoDir, `grpc/reflection/${version}/reflection.proto`),
    protoDir,
    `grpc.reflection.${version}.ServerReflection`,
  );
  const client = new Reflection(address(app), credentials.createInsecure());
  onTestFinished(() => client.close());
  return client;
}

const Root = protobuf.Root as unknown as { fromDescriptor(set: protobuf.Message): protobuf.Root };

/** Turns the FileDescriptorProtos the server sent into protobufjs types. */
function rootFromDescriptors(files: readonly Buffer[]): protobuf.Root {
  const decoded = files.map((bytes) => descriptor.FileDescriptorProto.decode(bytes));
  const unique = new Map(decoded.map((file) => [(file as unknown as { name: string }).name, file]));
  const set = descriptor.FileDescriptorSet.create({ file: [...unique.values()] });
  return Root.fromDescriptor(set);
}

function dynamicUnary(
  client: Client,
  path: string,
  requestType: protobuf.Type,
  responseType: protobuf.Type,
  request: object,
  metadata: Metadata,
): Promise<Record<string, unknown>> {
  const problem = requestType.verify(request);
  if (problem !== null) throw new Error(`request does not fit ${requestType.name}: ${problem}`);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      (value: object) => Buffer.from(requestType.encode(requestType.fromObject(value)).finish()),
      (bytes: Buffer) => responseType.toObject(responseType.decode(bytes), { longs: Number, enums: String, defaults: true }),
      request,
      metadata,
      (err, value) => (err ? reject(err) : value === undefined ? reject(new Error('no response')) : resolve(value)),
    );
  });
}

describe('server reflection', () => {
  it('a client with no proto files lists the services, fetches the descriptors and pays through PosService', async () => {
    const app = await start('reflection');
    const reflection = new ReflectionSession(reflectionClient(app));
    onTestFinished(() => reflection.close());

    const listed = await reflection.ask({ listServices: '*' });
    expect(listed.errorResponse).toBeUndefined();
    const services = (listed.listServicesResponse?.service ?? []).map((s) => s.name);
    expect(services).toContain(POS_SERVICE);

    const files = await reflection.ask({ fileContainingSymbol: POS_SERVICE });
    expect(files.errorResponse).toBeUndefined();
    const root = rootFromDescriptors(files.fileDescriptorResponse?.fileDescriptorProto ?? []);
    const service = root.lookupService(POS_SERVICE);
    const method = service.methods['Authorize'];
    if (method === undefined) throw new Error(`reflection described ${POS_SERVICE} without Authorize`);
    method.resolve();
    const requestType = method.resolvedRequestType;
    const responseType = method.resolvedResponseType;
    if (requestType === null || responseType === null) throw new Error('Authorize types did not resolve');

    // A bare grpc-js Client: only the reflected names and types are used, no generated code.
    const client = bareClient(app);
    const answer = await dynamicUnary(
      client,
      `/${POS_SERVICE}/${method.name}`,
      requestType,
      responseType,
      { terminalId: POS_TERMINAL.id, sequenceNumber: 1, amountFen: 2_500, credential: { card: { cardSerial: SERIAL } } },
      terminalMetadata(POS_TERMINAL),
    );

    expect(answer).toMatchObject({
      outcome: 'OUTCOME_APPROVED',
      balanceAfterFen: OPENING_FEN - 2_500,
      amountFen: 2_500,
      cardNumber: CARD_NO,
    });
    expect(Number(await app.redis.hget(app.keys.account(CARD_NO), 'bal'))).toBe(OPENING_FEN - 2_500);
  });

  it('a client that sends 200,000 requests on one stream and reads no answer: the switch stops reading, it does not queue the answers', async () => {
    // Before: every request (31 bytes) was answered into the stream's write queue whatever the client
    // read, about 280 bytes of heap each without credentials: 54 MiB held for these 6 MB, unbounded.
    const app = await start('reflstall');
    const session = http2Connect(`http://127.0.0.1:${app.grpcPort}`);
    onTestFinished(() => void session.destroy());
    session.on('error', () => undefined);
    const request = protobuf.Writer.create()
      .uint32((4 << 3) | 2)
      .string(POS_SERVICE)
      .finish(); // file_containing_symbol
    const framed = Buffer.alloc(5 + request.length);
    framed.writeUInt32BE(request.length, 1);
    framed.set(request, 5);
    const requests = Buffer.concat(Array.from({ length: 200_000 }, () => framed));
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.on('error', () => undefined);
    stream.pause(); // reads nothing: the HTTP/2 window towards the client fills
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    // Written is not taken: the switch reads at most what flow control lets through while it cannot answer.
    stream.write(requests);
    await new Promise((resolve) => stream.once('readable', resolve));
    // Give the switch every chance to read on: its event loop turns many times.
    for (let turn = 0; turn < 200; turn++) await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    const heldMiB = (process.memoryUsage().heapUsed - before) / 2 ** 20;
    expect(heldMiB).toBeLessThan(10);
    // Once the client reads, the answers flow again (far more than one HTTP/2 window of them).
    let received = 0;
    await new Promise<void>((resolve) =>
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > 4 * 2 ** 20) resolve();
      }),
    );
  });

  it('also answers the older v1alpha protocol (still used by some load-test tools)', async () => {
    const app = await start('reflalpha');
    const reflection = new ReflectionSession(reflectionClient(app, 'v1alpha'));
    onTestFinished(() => reflection.close());

    const listed = await reflection.ask({ listServices: '*' });
    expect((listed.listServicesResponse?.service ?? []).map((s) => s.name)).toContain(POS_SERVICE);
    const files = await reflection.ask({ fileContainingSymbol: `${POS_SERVICE}.Authorize` });
    const root = rootFromDescriptors(files.fileDescriptorResponse?.fileDescriptorProto ?? []);
    expect(root.lookupType('cardswitch.v1.AuthorizeRequest').fields['sequenceNumber']?.type).toBe('uint64');
  });
});

/** A plain grpc-js client with no methods of its own: calls go through makeUnaryRequest with the given types. */
function bareClient(app: SwitchApp): Client {
  const client = new Client(address(app), credentials.createInsecure());
  onTestFinished(() => client.close());
  return client;
}

// --- graceful shutdown ---------------------------------------------------------------------------------

interface Gate {
  /** Resolves once `count` Authorize calls are inside the ledger call, held. */
  readonly allHeld: Promise<void>;
  /** Lets every held call go on to the real ledger. */
  release(): void;
  /** Makes every held call fail without touching the ledger. */
  abort(): void;
}

/**
 * Holds Authorize calls at the ledger (the real Redis ledger runs once released), so the test knows for
 * certain that the server accepted them and that they are in flight when shutdown starts.
 */
function holdLedgerCalls(app: SwitchApp, count: number): Gate {
  const ledger = app.ledger;
  const original = ledger.authorize.bind(ledger);
  let held = 0;
  let allHeld!: () => void;
  const allHeldPromise = new Promise<void>((resolve) => (allHeld = resolve));
  let open!: (go: boolean) => void;
  const opened = new Promise<boolean>((resolve) => (open = resolve));
  ledger.authorize = async (input: AuthorizeInput): Promise<AuthorizeResult> => {
    held += 1;
    if (held === count) allHeld();
    if (!(await opened)) throw new Error('held past the shutdown by the test');
    return original(input);
  };
  return { allHeld: allHeldPromise, release: () => open(true), abort: () => open(false) };
}

type Settled = { ok: true; res: Record<string, unknown> } | { ok: false; code: Status; details: string };

function authorizeCall(client: Client, sequenceNumber: number, amountFen: number): Promise<Settled> {
  const requestType = posTypes().request;
  const responseType = posTypes().response;
  return dynamicUnary(
    client,
    `/${POS_SERVICE}/Authorize`,
    requestType,
    responseType,
    { terminalId: POS_TERMINAL.id, sequenceNumber, amountFen, credential: { card: { cardSerial: SERIAL } } },
    terminalMetadata(POS_TERMINAL),
  ).then(
    (res): Settled => ({ ok: true, res }),
    (err: ServiceError): Settled => ({ ok: false, code: err.code, details: err.details }),
  );
}

let cachedPosTypes: { request: protobuf.Type; response: protobuf.Type } | undefined;
/** The PosService message types, read from the .proto sources (this part of the suite is not about reflection). */
function posTypes(): { request: protobuf.Type; response: protobuf.Type } {
  if (cachedPosTypes === undefined) {
    const protoRoot = fileURLToPath(new URL('../proto/', import.meta.url));
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => join(protoRoot, target);
    root.loadSync('cardswitch/v1/pos.proto', { keepCase: false });
    cachedPosTypes = {
      request: root.lookupType('cardswitch.v1.AuthorizeRequest'),
      response: root.lookupType('cardswitch.v1.AuthorizeResponse'),
    };
  }
  return cachedPosTypes;
}

/** Opens a Watch on a service's health and yields each status as it arrives. */
function watchHealth(client: Client, service: string): { next(): Promise<string>; cancel(): void } {
  const open = (client as unknown as Record<string, (req: object) => ClientReadableStream<{ status: string }>>)['watch'];
  if (open === undefined) throw new Error('no watch method');
  const stream = open.call(client, { service });
  const queue: string[] = [];
  const waiting: ((status: string) => void)[] = [];
  stream.on('data', (m: { status: string }) => {
    const waiter = waiting.shift();
    if (waiter !== undefined) waiter(m.status);
    else queue.push(m.status);
  });
  stream.on('error', () => undefined); // the cancel below ends it with CANCELLED
  return {
    next: () => {
      const ready = queue.shift();
      return ready !== undefined ? Promise.resolve(ready) : new Promise((resolve) => waiting.push(resolve));
    },
    cancel: () => stream.cancel(),
  };
}

describe('graceful shutdown', () => {
  it('answers all 200 accepted calls, refuses later ones, turns health NOT_SERVING, and the ledger agrees with the answers', async () => {
    const app = await start('shutdown', { SHUTDOWN_GRACE_MS: '5000' });
    const client = bareClient(app);
    const health = healthClient(app);
    const watch = watchHealth(health, POS_SERVICE);
    onTestFinished(() => watch.cancel());
    expect(await watch.next()).toBe('SERVING');

    const gate = holdLedgerCalls(app, 200);
    const amounts = Array.from({ length: 200 }, (_, i) => 100 + i);
    const inFlight = amounts.map((amount, i) => authorizeCall(client, i + 1, amount));
    await gate.allHeld;

    const startedAt = performance.now();
    const stopped = app.stop();
    expect(await watch.next()).toBe('NOT_SERVING');
    watch.cancel();
    const late = await Promise.all(Array.from({ length: 20 }, (_, i) => authorizeCall(client, 1_000 + i, 1_000)));
    gate.release();
    const answers = await Promise.all(inFlight);
    await stopped;
    const stopMs = performance.now() - startedAt;

    const refusals = answers.filter((a) => !a.ok);
    expect(refusals).toEqual([]);
    for (const a of late) {
      if (!a.ok) expect([Status[Status.UNAVAILABLE], Status[Status.CANCELLED]]).toContain(Status[a.code]);
    }
    expect(stopMs).toBeLessThan(5_000);

    const approved = [...answers, ...late].flatMap((a) => (a.ok && a.res['outcome'] === 'OUTCOME_APPROVED' ? [a.res] : []));
    expect(approved.length).toBeGreaterThanOrEqual(200);
    const redis = connect();
    onTestFinished(async () => void (await redis.quit()));
    const pays = (await readJournal(redis, app.keys.journalOfCard(CARD_NO))).filter(
      (e) => e.fields['c'] === CARD_NO && e.fields['k'] === 'pay',
    );
    for (const res of approved) {
      expect(pays.filter((e) => e.id === res['transactionId'])).toHaveLength(1);
    }
    expect(pays).toHaveLength(approved.length);
    const approvedFen = approved.reduce((sum, res) => sum + Number(res['amountFen']), 0);
    expect(Number(await redis.hget(app.keys.account(CARD_NO), 'bal'))).toBe(OPENING_FEN - approvedFen);
  });

  it('forces the shutdown after the grace period when a call does not finish, and that call moves no money', async () => {
    const graceMs = 300;
    const app = await start('forced', { SHUTDOWN_GRACE_MS: String(graceMs) });
    const client = bareClient(app);
    const gate = holdLedgerCalls(app, 1);
    const stuck = authorizeCall(client, 1, 1_000);
    await gate.allHeld;

    const startedAt = performance.now();
    await app.stop();
    const stopMs = performance.now() - startedAt;
    const answer = await stuck;
    gate.abort();

    expect(stopMs).toBeGreaterThanOrEqual(graceMs - 5);
    expect(stopMs).toBeLessThan(graceMs + 2_000);
    expect(answer.ok).toBe(false);
    if (!answer.ok) expect([Status[Status.UNAVAILABLE], Status[Status.CANCELLED]]).toContain(Status[answer.code]);
    const redis = connect();
    onTestFinished(async () => void (await redis.quit()));
    expect(Number(await redis.hget(app.keys.account(CARD_NO), 'bal'))).toBe(OPENING_FEN);
  });
});

/** V8's collector, so what the switch still holds can be told from garbage not yet collected. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
