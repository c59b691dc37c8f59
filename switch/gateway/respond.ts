// Low-level uWS answers shared by the HTTP routes and the WebSocket upgrade: one corked write of status,
// security headers and body, and the copying of request fields a handler may read after an await.
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { HttpError } from './errors.js';

/** On every response; a handler may override them (lowercase names). */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/**
 * The request headers a handler may read. uWS request objects die when the uWS callback returns (before
 * the first await), so these are copied up front; nothing else is kept.
 */
export const COPIED_HEADERS = [
  'authorization',
  'content-type',
  'content-length',
  'user-agent',
  'x-request-id',
  'x-forwarded-for',
  'cookie',
  'origin',
  // What the caller reads: a browser (text/html) gets a page where one lands (the Alipay callback).
  'accept',
  // Set by a reverse proxy: a request carrying one came through it, whatever address it arrived from.
  'forwarded',
  'x-real-ip',
  'via',
] as const;

/** Headers only a proxy adds: a loopback request with one is a proxied client, not a local scraper. */
export const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip', 'via'] as const;

export interface Reply {
  readonly status: number;
  /** Bytes are sent as they are (the phone page's compressed files). */
  readonly body: string | Uint8Array;
  readonly contentType: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Close the connection after answering (the request body was not read to its end). */
  readonly close?: boolean;
}

const statusLines = new Map<number, string>();

function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) statusLines.set(status, (line = `${status} ${STATUS_CODES[status] ?? 'Unknown'}`));
  return line;
}

/**
 * Writes one whole response inside cork (one syscall; required for writes after an await). The caller
 * guarantees `res` is alive: not aborted and not answered yet. The answer to a HEAD (`headOnly`) is the
 * status and headers with the body's Content-Length and no body: a body there would be read by the
 * client as the start of the next answer on the same connection (RFC 9112 6.3).
 */
export function writeReply(res: HttpResponse, reply: Reply, headOnly = false): void {
  const headers: Record<string, string> = { ...SECURITY_HEADERS, 'content-type': reply.contentType };
  for (const [name, value] of Object.entries(reply.headers ?? {})) headers[name.toLowerCase()] = value;
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    if (headOnly && reply.close !== true) {
      // endWithoutBody(length) of this uWS build leaves the response unanswered (uWS then aborts the
      // process): the length goes in as a header, and endWithoutBody() is called without arguments.
      res.writeHeader('content-length', String(Buffer.byteLength(reply.body)));
      res.endWithoutBody();
    } else res.end(reply.body, reply.close ?? false); // closing: nothing follows that a body could corrupt
  });
}

export function errorReply(error: HttpError, extra: { headers?: Readonly<Record<string, string>>; close?: boolean } = {}): Reply {
  return {
    status: error.status,
    body: JSON.stringify(error.body),
    contentType: JSON_CONTENT_TYPE,
    headers: { ...error.headers, ...extra.headers },
    close: extra.close ?? false,
  };
}

/** Copies COPIED_HEADERS that are present; call synchronously inside the uWS handler. */
export function copyHeaders(req: HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of COPIED_HEADERS) {
    const value = req.getHeader(name);
    if (value !== '') headers[name] = value;
  }
  return headers;
}

/** The peer's address as text; call synchronously inside the uWS handler. */
export function remoteAddressOf(res: HttpResponse): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
}
