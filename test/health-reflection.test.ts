// grpc.health.v1 and server reflection answer properly (issue 9, item 6): bytes they cannot decode are
// INVALID_ARGUMENT (the fuzz run got INTERNAL), a reflection stream carrying several requests gets an
// answer to each, in order, and reflection lists and describes grpc.health.v1.Health, so a client with
// no proto files (grpcurl without -proto) can call Health/Check. The clients here know only the
// reflection and health protocols' own .proto files, or nothing at all (raw bytes).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  Client,
  credentials,
  loadPackageDefinition,
  Metadata,
  status as Status,
  type GrpcObject,
  type MethodDefinition,
  type ServiceClientConstructor,
  type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SwitchApp } from '../switch/app.js';
import { startTestSwitch } from './helpers/switch.js';

const HEALTH = 'grpc.health.v1.Health';
const POS_SERVICE = 'cardswitch.v1.PosService';
/** A tag whose varint is cut off (protobufjs: "index out of range"). */
const GARBAGE = Buffer.from([0xff]);
/** Field 2, length-delimited, with its length missing. */
const NO_LENGTH = Buffer.from([0x12]);

let app: SwitchApp;
let raw: Client;

beforeAll(async () => {
  app = await startTestSwitch('health-reflection');
  raw = new Client(address(), credentials.createInsecure());
});

afterAll(async () => {
  raw.close();
  await app.stop();
});

function address(): string {
  return `127.0.0.1:${app.grpcPort}`;
}

const identity = (bytes: Buffer): Buffer => bytes;

function rawUnary(path: string, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    raw.makeUnaryRequest(path, identity, identity, bytes, new Metadata(), { deadline: Date.now() + 5_000 }, (err, value) =>
      err ? reject(err) : resolve(value ?? Buffer.alloc(0)),
    );
  });
}

/** A server-streaming call with raw bytes; resolves with its final status and how many messages came. */
function rawServerStream(path: string, bytes: Buffer): Promise<{ status: StatusObject; messages: number }> {
  const stream = raw.makeServerStreamRequest(path, identity, identity, bytes, new Metadata(), { deadline: Date.now() + 5_000 });
  let messages = 0;
  stream.on('data', () => messages++);
  stream.on('error', () => undefined);
  return new Promise((resolve) => stream.on('status', (status: StatusObject) => resolve({ status, messages })));
}

async function statusOf(pending: Promise<unknown>): Promise<ServiceError> {
  try {
    await pending;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('the call was expected to fail');
}

describe('undecodable bytes are INVALID_ARGUMENT', () => {
  it.each([
    ['truncated', GARBAGE],
    ['length-less', NO_LENGTH],
  ])('Health/Check with %s bytes', async (_what, bytes) => {
    const err = await statusOf(rawUnary(`/${HEALTH}/Check`, bytes));
    expect({ code: Status[err.code], details: err.details }).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: expect.stringMatching(/Health\/Check.*could not be decoded/) as unknown,
    });
  });

  it('Health/Watch with undecodable bytes ends at once with INVALID_ARGUMENT', async () => {
    const { status, messages } = await rawServerStream(`/${HEALTH}/Watch`, GARBAGE);
    expect(Status[status.code]).toBe('INVALID_ARGUMENT');
    expect(status.details).toMatch(/Health\/Watch.*could not be decoded/);
    expect(messages).toBe(0);
  });

  it.each(['v1', 'v1alpha'] as const)(
    'reflection %s answers an undecodable message INVALID_ARGUMENT in the stream and answers the rest',
    async (version) => {
      const method = reflectionMethod(version);
      const requests = [{ listServices: '*' }, GARBAGE, { fileContainingSymbol: POS_SERVICE }, NO_LENGTH, { listServices: '*' }];
      const stream = raw.makeBidiStreamRequest(
        method.path,
        (m: object) => (Buffer.isBuffer(m) ? m : method.requestSerialize(m)),
        (bytes: Buffer) => method.responseDeserialize(bytes) as ReflectionResponse,
        new Metadata(),
        { deadline: Date.now() + 5_000 },
      );
      const answers: ReflectionResponse[] = [];
      stream.on('data', (answer: ReflectionResponse) => answers.push(answer));
      stream.on('error', () => undefined);
      const status = new Promise<StatusObject>((resolve) => stream.on('status', resolve));
      for (const request of requests) stream.write(request);
      stream.end();

      expect(Status[(await status).code]).toBe('OK');
      expect(answers).toHaveLength(requests.length);
      for (const i of [1, 3]) {
        expect(answers[i]?.errorResponse).toMatchObject({
          errorCode: Status.INVALID_ARGUMENT,
          errorMessage: expect.stringMatching(/ServerReflectionInfo request could not be decoded/) as unknown,
        });
      }
      expect(answers[0]?.listServicesResponse?.service.map((s) => s.name)).toContain(POS_SERVICE);
      expect(answers[2]?.fileDescriptorResponse?.fileDescriptorProto.length).toBeGreaterThan(0);
      expect(answers[4]?.listServicesResponse?.service.map((s) => s.name)).toContain(POS_SERVICE);
    },
  );

  it('the health service still answers a proper Check afterwards', async () => {
    const empty = await rawUnary(`/${HEALTH}/Check`, Buffer.alloc(0));
    expect([...empty]).toEqual([0x08, 0x01]); // status = SERVING
  });
});

// --- reflection, by a client that knows only the reflection protocol's own .proto -------------------

interface ReflectionResponse {
  originalRequest?: Record<string, unknown>;
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

function reflectionDefinition(version: 'v1' | 'v1alpha'): PackageDefinition {
  const packageRoot = dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json'));
  const protoDir = join(packageRoot, 'build', 'proto');
  return loadSync(join(protoDir, `grpc/reflection/${version}/reflection.proto`), {
    includeDirs: [protoDir],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}

/** ServerReflectionInfo's path and (de)serializers, from the reflection protocol's own .proto. */
function reflectionMethod(version: 'v1' | 'v1alpha'): MethodDefinition<object, unknown> {
  const service = reflectionDefinition(version)[`grpc.reflection.${version}.ServerReflection`] as Record<
    string,
    MethodDefinition<object, unknown>
  >;
  const method = service['ServerReflectionInfo'];
  if (method === undefined) throw new Error('no ServerReflectionInfo');
  return method;
}

function reflectionClient(version: 'v1' | 'v1alpha'): Client {
  let node: unknown = loadPackageDefinition(reflectionDefinition(version));
  for (const part of `grpc.reflection.${version}.ServerReflection`.split('.')) node = (node as GrpcObject)[part];
  const Reflection = node as ServiceClientConstructor;
  return new Reflection(address(), credentials.createInsecure());
}

/** Writes every request on one ServerReflectionInfo stream before reading, half-closes, collects the answers. */
async function reflect(
  version: 'v1' | 'v1alpha',
  requests: readonly object[],
): Promise<{ answers: ReflectionResponse[]; status: StatusObject }> {
  const client = reflectionClient(version);
  try {
    const open = (client as unknown as Record<string, (options: object) => NodeJS.EventEmitter & { write(m: object): void; end(): void }>)[
      'serverReflectionInfo'
    ];
    if (open === undefined) throw new Error('no serverReflectionInfo method');
    const stream = open.call(client, { deadline: Date.now() + 5_000 });
    const answers: ReflectionResponse[] = [];
    stream.on('data', (answer: ReflectionResponse) => answers.push(answer));
    stream.on('error', () => undefined);
    const status = new Promise<StatusObject>((resolve) => stream.on('status', resolve));
    for (const request of requests) stream.write({ host: '', ...request });
    stream.end();
    return { answers, status: await status };
  } finally {
    client.close();
  }
}

const Root = protobuf.Root as unknown as { fromDescriptor(set: protobuf.Message): protobuf.Root };

function rootFromDescriptors(files: readonly Buffer[]): protobuf.Root {
  const decoded = files.map((bytes) => descriptor.FileDescriptorProto.decode(bytes));
  const unique = new Map(decoded.map((file) => [(file as unknown as { name: string }).name, file]));
  return Root.fromDescriptor(descriptor.FileDescriptorSet.create({ file: [...unique.values()] }));
}

describe.each(['v1', 'v1alpha'] as const)('server reflection %s', (version) => {
  it('answers each of several requests written at once on one stream, in order, then ends OK', async () => {
    const requests = [
      { listServices: '*' },
      { fileContainingSymbol: POS_SERVICE },
      { fileContainingSymbol: 'no.such.Symbol' },
      { fileContainingSymbol: `${HEALTH}.Check` },
    ];
    const { answers, status } = await reflect(version, requests);

    expect(Status[status.code]).toBe('OK');
    expect(answers.map((a) => a.originalRequest?.['messageRequest'])).toEqual([
      'listServices',
      'fileContainingSymbol',
      'fileContainingSymbol',
      'fileContainingSymbol',
    ]);
    expect(answers.map((a) => a.originalRequest?.['fileContainingSymbol'] ?? '*')).toEqual([
      '*',
      POS_SERVICE,
      'no.such.Symbol',
      `${HEALTH}.Check`,
    ]);
    expect(answers[2]?.errorResponse).toMatchObject({ errorCode: Status.NOT_FOUND });
  });

  it('lists grpc.health.v1.Health and describes it well enough to call Health/Check with no proto file', async () => {
    const { answers } = await reflect(version, [{ listServices: '*' }, { fileContainingSymbol: HEALTH }]);
    const listed = (answers[0]?.listServicesResponse?.service ?? []).map((s) => s.name);
    expect(listed).toEqual(expect.arrayContaining([HEALTH, POS_SERVICE, 'cardswitch.v1.KioskService', 'cardswitch.v1.AdminService']));
    expect(answers[1]?.errorResponse).toBeUndefined();

    const root = rootFromDescriptors(answers[1]?.fileDescriptorResponse?.fileDescriptorProto ?? []);
    const check = root.lookupService(HEALTH).methods['Check'];
    if (check === undefined) throw new Error('reflection described Health without Check');
    const requestType = root.lookupType(check.requestType.replace(/^\./, ''));
    const responseType = root.lookupType(check.responseType.replace(/^\./, ''));
    const answer = await rawUnary(
      `/${HEALTH}/Check`,
      Buffer.from(requestType.encode(requestType.fromObject({ service: POS_SERVICE })).finish()),
    );
    expect(responseType.toObject(responseType.decode(answer), { enums: String })).toEqual({ status: 'SERVING' });
  });
});
