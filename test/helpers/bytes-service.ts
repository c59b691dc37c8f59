// A grpc-js service whose messages are raw bytes, for tests of the switch's gRPC plumbing (the gate, the
// HTTP/2 stream table) on a real server without any proto.
import type { MethodDefinition } from '@grpc/grpc-js';

/** Serializers that pass the bytes through. */
export const bytes = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };

/** One method at `path` taking and answering raw bytes; `requestStream` for a client-streaming one. */
export function bytesMethod(path: string, requestStream = false): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream,
    responseStream: false,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  };
}
