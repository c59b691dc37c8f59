// One HTTP(S) exchange with a payment channel (Alipay's gateway, WeChat Pay's API), over node:http /
// node:https with a keep-alive agent per adapter. Not the global fetch: fetch cost the switch about 210 µs
// of CPU per call against about 40 µs for node:http on the same loopback server (its Request / Response
// objects and web streams; loadtest/RESULTS.md, "Seventh session"), and the v2 /secapi/ calls of WeChat Pay
// (reverse, refund) need the merchant's client certificate on the TLS connection, which fetch cannot take
// without an extra dispatcher package. Every call is bounded: a timeout, the caller's abort signal, and a
// body size limit; any of them ends the exchange as a TransportError (the caller's `unknown`).
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';

export interface HttpAnswer {
  readonly status: number;
  /** Lower-case names, as node gives them. */
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Why an exchange did not complete: the caller aborted, our timeout ran out, or the connection failed. */
export type TransportReason = 'aborted' | 'timeout' | 'failed';

/** The exchange did not complete: the request may or may not have been acted on. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    message: string,
    readonly reason: TransportReason,
    /** The socket error's code (ECONNREFUSED, ECONNRESET ...), when there was one. */
    readonly code = '',
  ) {
    super(message);
  }
}

export interface HttpCall {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly signal: AbortSignal;
  /** The agent of the URL's protocol (keepAliveAgent, clientCertAgent); undefined: node's global agent. */
  readonly agent?: HttpAgent | HttpsAgent | undefined;
}

/** Sockets per channel and per agent: bounds the connections one switch opens to a channel. */
const MAX_SOCKETS = 64;
/**
 * An idle kept-alive socket is closed after this long (when the server sends no Keep-Alive hint: node's
 * agent follows the hint, less a second). Below the usual 5 s server and load-balancer idle timeouts, so
 * the switch does not send a payment on a socket the other side is closing (that payment's answer would
 * be lost and the payment `unknown` until queried).
 */
const IDLE_SOCKET_MS = 4000;

/** A keep-alive agent for plain calls to `base` (http: or https:, the system's CA store). */
export function keepAliveAgent(base: string | URL): HttpAgent | HttpsAgent {
  const options = {
    keepAlive: true,
    maxSockets: MAX_SOCKETS,
    maxFreeSockets: MAX_SOCKETS,
    timeout: IDLE_SOCKET_MS,
    scheduling: 'lifo' as const,
  };
  return new URL(base).protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
}

/** A TLS agent presenting the merchant certificate (apiclient_cert.pem + apiclient_key.pem). */
export function clientCertAgent(certPem: string | Buffer, keyPem: string | Buffer): HttpsAgent {
  return new HttpsAgent({ cert: certPem, key: keyPem, keepAlive: true, maxSockets: MAX_SOCKETS, timeout: IDLE_SOCKET_MS });
}

export function exchange(call: HttpCall): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    if (call.signal.aborted) {
      reject(new TransportError('aborted before the request was sent', 'aborted'));
      return;
    }
    const send = call.url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(call.url, {
      method: call.method,
      headers: { ...call.headers, 'content-length': String(Buffer.byteLength(call.body)) },
      ...(call.agent !== undefined ? { agent: call.agent } : {}),
    });
    let settled = false;
    const fail = (message: string, reason: TransportReason, code = ''): void => {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      reject(new TransportError(message, reason, code));
    };
    const onAbort = (): void => fail('aborted by the caller', 'aborted');
    const timer = setTimeout(() => fail(`no answer within ${call.timeoutMs} ms`, 'timeout'), call.timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      call.signal.removeEventListener('abort', onAbort);
    };
    call.signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) => fail(`request failed (${err.code ?? err.message})`, 'failed', err.code ?? ''));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > call.maxBodyBytes) fail(`answer larger than ${call.maxBodyBytes} bytes`, 'failed');
        else chunks.push(chunk);
      });
      res.on('error', (err: NodeJS.ErrnoException) => fail(`answer broken off (${err.code ?? err.message})`, 'failed', err.code ?? ''));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.end(call.body);
  });
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
