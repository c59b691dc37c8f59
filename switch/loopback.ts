// A plain HTTP server on the loopback interface, for the simulators that stand in for outside services in
// development and tests (identity providers, payment channels, the fee provider): listen on a free port,
// and stop dropping every connection (including requests a simulator holds open on purpose).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  readonly server: Server;
  /** http://127.0.0.1:<port> */
  readonly url: string;
}

/** Listens on 127.0.0.1 (port 0: a free one); rejects when the port cannot be had. */
export async function listenOnLoopback(handler: (req: IncomingMessage, res: ServerResponse) => void, port = 0): Promise<LoopbackServer> {
  const server = createServer(handler);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Stops listening and drops every open connection; resolves once the server is closed. */
export async function closeLoopback(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
