// Asks the switch whether it implements an RPC without changing anything: an empty request from a
// terminal of the right kind. An implemented handler refuses it (INVALID_ARGUMENT: terminal_id is
// required); a missing one answers UNIMPLEMENTED. The lunch-rush mix drops what the switch lacks.
import { connect } from 'node:http2';
import type { CampusTerminal } from '../shared/campus-data.js';
import { GRPC_UNIMPLEMENTED, rpcPath, type PosRpc } from '../shared/traffic.js';
import { grpcFrame } from '../shared/wire.js';

const PROBE_TIMEOUT_MS = 5000;

/** The gRPC status of an empty request, or -1 when the answer carried none. */
export async function probeStatus(host: string, port: number, rpc: PosRpc, terminal: CampusTerminal): Promise<number> {
  const session = connect(`http://${host}:${port}`);
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`probe of ${rpc} timed out`)), PROBE_TIMEOUT_MS);
      session.once('error', reject);
      const stream = session.request({
        ':method': 'POST',
        ':path': rpcPath(rpc),
        'content-type': 'application/grpc',
        te: 'trailers',
        'terminal-id': terminal.id,
        'terminal-secret': terminal.secret,
      });
      let status = -1;
      const read = (headers: Record<string, unknown>): void => {
        if (headers['grpc-status'] !== undefined) status = Number(headers['grpc-status']);
      };
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('data', () => undefined);
      stream.on('error', () => undefined);
      stream.on('close', () => {
        clearTimeout(timer);
        resolve(status);
      });
      stream.end(grpcFrame(new Uint8Array(0)));
    });
  } finally {
    session.close();
  }
}

export async function isImplemented(host: string, port: number, rpc: PosRpc, terminal: CampusTerminal): Promise<boolean> {
  return (await probeStatus(host, port, rpc, terminal)) !== GRPC_UNIMPLEMENTED;
}
