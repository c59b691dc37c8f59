// One HTTP(S) exchange with WeChat Pay. node:http / node:https rather than fetch: the v2 /secapi/ calls
// (reverse, refund) need the merchant's client certificate on the TLS connection, which the global fetch
// cannot take without an extra dispatcher package. Every call is bounded: a timeout, the caller's abort
// signal, and a body size limit; any of them ends the exchange as a TransportError (the caller's `unknown`).
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';

export interface HttpAnswer {
  readonly status: number;
  /** Lower-case names, as node gives them. */
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** The exchange did not complete: the request may or may not have been acted on. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
}

export interface HttpCall {
  readonly method: 'GET' | 'POST';
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly signal: AbortSignal;
  /** The merchant's client certificate (v2 /secapi/): only used over https. */
  readonly agent?: HttpsAgent | undefined;
}

/** A TLS agent presenting the merchant certificate (apiclient_cert.pem + apiclient_key.pem). */
export function clientCertAgent(certPem: string | Buffer, keyPem: string | Buffer): HttpsAgent {
  return new HttpsAgent({ cert: certPem, key: keyPem, keepAlive: true, maxSockets: 64 });
}

export function exchange(call: HttpCall): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    if (call.signal.aborted) {
      reject(new TransportError('aborted before the request was sent'));
      return;
    }
    const https = call.url.protocol === 'https:';
    const send = https ? httpsRequest : httpRequest;
    const req = send(call.url, {
      method: call.method,
      headers: { ...call.headers, 'content-length': String(Buffer.byteLength(call.body)) },
      ...(https && call.agent !== undefined ? { agent: call.agent } : {}),
    });
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      cleanup();
      req.destroy();
      reject(new TransportError(message));
    };
    const onAbort = (): void => fail('aborted by the caller');
    const timer = setTimeout(() => fail(`no answer within ${call.timeoutMs} ms`), call.timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      call.signal.removeEventListener('abort', onAbort);
    };
    call.signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) => fail(`request failed (${err.code ?? err.message})`));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > call.maxBodyBytes) fail(`answer larger than ${call.maxBodyBytes} bytes`);
        else chunks.push(chunk);
      });
      res.on('error', (err: NodeJS.ErrnoException) => fail(`answer broken off (${err.code ?? err.message})`));
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
