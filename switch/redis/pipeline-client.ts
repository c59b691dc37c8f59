// A lean Redis client for the hot path (the payment script and the sequence claim): RESP2 over one
// socket, every command of an event-loop turn written in one go, replies matched in order. It fails
// closed: while disconnected, or after a command outlived its deadline, every pending and new command
// is rejected at once (the switch answers UNAVAILABLE and the POS retries with the same key), and it
// reconnects in the background. With a breaker (breaker.ts, shared with ioredis) a timeout or a lost
// connection also refuses every later command at once until a probe PING is answered. Everything else
// keeps using ioredis.
import { connect, isIP, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import type { Logger } from '../log.js';
import { LedgerDownError, type LedgerBreaker } from './breaker.js';

export type RespReply = string | number | null | RespReply[];

export class RespError extends Error {
  override readonly name = 'RespError';
}

/** The connection broke or a command outlived its deadline: the outcome of a write is unknown. */
export class PipelineUnavailableError extends Error {
  override readonly name = 'PipelineUnavailableError';
}

interface Pending {
  resolve: (reply: RespReply) => void;
  reject: (err: Error) => void;
  readonly deadlineMs: number;
}

const ignore = (): void => undefined;

export interface PipelineOptions {
  readonly host: string;
  readonly port: number;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** At most this many commands wait for replies; more is refused rather than queued without bound. */
  readonly maxPending: number;
  readonly log: Logger;
  /** Shared with the switch's ioredis client: fail fast while the ledger is known down. */
  readonly breaker?: LedgerBreaker;
  /** AUTH on every connection, before any command (REDIS_URL's user and password); never logged. */
  readonly username?: string;
  readonly password?: string;
  /** SELECT on every connection when not 0 (REDIS_URL's /N). */
  readonly db?: number;
  /** TLS (rediss://), the server's certificate checked as ioredis checks it (Node's CAs, NODE_EXTRA_CA_CERTS). */
  readonly tls?: boolean;
  /** More TLS options (a private CA, a client certificate); the switch gives none. */
  readonly tlsOptions?: ConnectionOptions;
}

/** REDIS_URL asks for something this client cannot do; the switch does not start. */
export class RedisUrlError extends Error {
  override readonly name = 'RedisUrlError';
}

const CRLF = '\r\n';
const RECONNECT_MAX_DELAY_MS = 2000;
/** The read buffer of a connection: a batch of replies to a whole poll phase of commands fits. */
const READ_BUFFER_BYTES = 64 * 1024;

/** RESP2 encoding of one command. */
export function encodeCommand(args: readonly (string | number)[]): string {
  let out = `*${args.length}${CRLF}`;
  for (const arg of args) {
    const text = typeof arg === 'number' ? String(arg) : arg;
    out += `$${Buffer.byteLength(text)}${CRLF}${text}${CRLF}`;
  }
  return out;
}

/**
 * Incremental RESP2 reply parser: feed it chunks, it hands out complete replies in order and keeps
 * the incomplete tail for the next chunk.
 */
const EMPTY = Buffer.alloc(0);

export class RespParser {
  private buffer: Buffer = EMPTY;
  private offset = 0;

  constructor(private readonly onReply: (reply: RespReply | RespError) => void) {}

  /**
   * `chunk` is only borrowed (the socket reads into one buffer it reuses): every reply is copied out
   * as strings and numbers, and an incomplete tail is copied before feed returns.
   */
  feed(chunk: Buffer): void {
    this.buffer = this.offset < this.buffer.length ? Buffer.concat([this.buffer.subarray(this.offset), chunk]) : chunk;
    this.offset = 0;
    for (;;) {
      const start = this.offset;
      const reply = this.parse();
      if (reply === INCOMPLETE) {
        this.buffer = start < this.buffer.length ? Buffer.from(this.buffer.subarray(start)) : EMPTY;
        this.offset = 0;
        return;
      }
      this.onReply(reply);
    }
  }

  private line(): string | typeof INCOMPLETE {
    const end = this.buffer.indexOf(CRLF, this.offset, 'latin1');
    if (end < 0) return INCOMPLETE;
    const text = this.buffer.toString('utf8', this.offset, end);
    this.offset = end + 2;
    return text;
  }

  private parse(): RespReply | RespError | typeof INCOMPLETE {
    if (this.offset >= this.buffer.length) return INCOMPLETE;
    const type = this.buffer[this.offset++];
    const line = this.line();
    if (line === INCOMPLETE) return INCOMPLETE;
    switch (type) {
      case 0x2b: // +
        return line;
      case 0x2d: // -
        return new RespError(line);
      case 0x3a: // :
        return Number(line);
      case 0x24: // $
        return this.bulk(Number(line));
      case 0x2a: // *
        return this.array(Number(line));
      default:
        throw new Error(`unexpected RESP type byte ${String(type)}`);
    }
  }

  private bulk(length: number): string | null | typeof INCOMPLETE {
    if (length < 0) return null;
    if (this.offset + length + 2 > this.buffer.length) return INCOMPLETE;
    const text = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length + 2;
    return text;
  }

  private array(length: number): RespReply[] | null | RespError | typeof INCOMPLETE {
    if (length < 0) return null;
    const items: RespReply[] = [];
    let nestedError: RespError | undefined;
    for (let i = 0; i < length; i++) {
      const item = this.parse();
      if (item === INCOMPLETE) return INCOMPLETE;
      // Every element is consumed (the stream stays in step); an error inside makes the whole reply an error.
      if (item instanceof RespError) nestedError ??= item;
      else items.push(item);
    }
    return nestedError ?? items;
  }
}

const INCOMPLETE = Symbol('incomplete');

export class PipelineClient {
  private socket: Socket | undefined;
  private ready = false;
  private closed = false;
  /** Why the switch itself is ending the connection (a command timed out), for the breaker. */
  private breakReason: string | undefined;
  private readonly pending: Pending[] = [];
  private pendingHead = 0;
  private outgoing: string[] = [];
  private flushScheduled = false;
  private reconnectAttempt = 0;
  /** The first connect logs which client the hot path runs on; reconnects do not repeat it. */
  private announced = false;
  private readonly watchdog: NodeJS.Timeout;

  constructor(private readonly options: PipelineOptions) {
    // One timer for all commands: replies come in order, so the oldest pending one is the first to be late.
    this.watchdog = setInterval(() => this.checkDeadlines(), Math.max(10, Math.floor(options.commandTimeoutMs / 4)));
    this.watchdog.unref();
    options.breaker?.attach(
      () => this.send(['PING']),
      (reason) => this.release(reason),
    );
  }

  /**
   * The hot-path client for a one-Redis ledger: `redis://` or `rediss://` (TLS), with the user,
   * password and database REDIS_URL gives (`redis://user:password@host:port/2`), as ioredis reads them
   * (REDIS_PASSWORD is for the cluster and Sentinel forms, which do not use this client).
   * Production runs the path the benchmark measures whatever the URL (issue 15).
   */
  static fromUrl(url: string, options: Omit<PipelineOptions, 'host' | 'port'>): PipelineClient {
    const parsed = new URL(url);
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new RedisUrlError(`REDIS_URL must start with redis:// or rediss://, got ${parsed.protocol}//`);
    }
    const path = parsed.pathname.replace(/^\//, '');
    if (path !== '' && !/^\d{1,5}$/.test(path)) {
      throw new RedisUrlError(`REDIS_URL's database (after the last /) must be a number such as /0, got /${path}`);
    }
    return new PipelineClient({
      ...options,
      host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
      port: Number(parsed.port || 6379),
      username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
      password: parsed.password === '' ? undefined : decodeURIComponent(parsed.password),
      db: path === '' ? 0 : Number(path),
      tls: parsed.protocol === 'rediss:',
    });
  }

  /** AUTH and SELECT, sent first on every connection. */
  private handshake(): (string | number)[][] {
    const commands: (string | number)[][] = [];
    const { username, password, db } = this.options;
    if (password !== undefined) commands.push(username === undefined ? ['AUTH', password] : ['AUTH', username, password]);
    else if (username !== undefined) commands.push(['AUTH', username, '']);
    if (db !== undefined && db !== 0) commands.push(['SELECT', db]);
    return commands;
  }

  /** Connects; rejects when Redis cannot be reached. */
  async connect(): Promise<void> {
    await this.open();
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const parser = new RespParser((reply) => this.onReply(reply));
      const feed = (chunk: Buffer): void => {
        try {
          parser.feed(chunk);
        } catch (err) {
          socket.destroy(err as Error);
        }
      };
      const { host, port } = this.options;
      // Replies are read into one buffer per connection and parsed in place (`onread`), not handed out
      // as a new Buffer per chunk through a Readable stream (the socket's read path was a visible share
      // of the switch's CPU in a profile of streamed taps: loadtest/RESULTS.md, "Figures once kept in comments", row C5).
      // A TLS socket has no `onread`: its decrypted chunks come as 'data'.
      const socket: Socket = this.options.tls
        ? connectTls({ ...this.options.tlsOptions, host, port, servername: isIP(host) ? undefined : host })
            .setNoDelay(true)
            .on('data', feed)
        : connect({
            host,
            port,
            noDelay: true,
            onread: {
              buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
              callback: (bytes: number, buffer: Uint8Array): boolean => {
                feed(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
                return true;
              },
            },
          });
      this.socket = socket;
      let refused: string | undefined;
      const timer = setTimeout(
        () => socket.destroy(new Error(`connect timed out after ${this.options.connectTimeoutMs} ms`)),
        this.options.connectTimeoutMs,
      );
      const ready = (): void => {
        clearTimeout(timer);
        if (!this.announced) {
          this.announced = true;
          this.options.log.info(
            {
              redisClient: 'pipeline',
              host,
              port,
              tls: this.options.tls === true,
              auth: this.options.password !== undefined,
              db: this.options.db ?? 0,
            },
            'ledger hot path: the lean RESP2 pipeline client (payment scripts and sequence claims); other commands: ioredis',
          );
        }
        this.ready = true;
        this.reconnectAttempt = 0;
        this.options.breaker?.wake();
        // Commands that arrived while the connection was being made go out now.
        this.flush();
        resolve();
      };
      socket.once(this.options.tls ? 'secureConnect' : 'connect', () => {
        const hello = this.handshake();
        if (hello.length === 0) return ready();
        // AUTH and SELECT go first; their replies come before those of anything queued meanwhile (not
        // yet written: it goes out once they are answered).
        let answered = 0;
        const deadlineMs = Date.now() + this.options.connectTimeoutMs;
        const entries: Pending[] = hello.map((args) => ({
          deadlineMs,
          resolve: () => {
            if (++answered === hello.length && this.socket === socket) ready();
          },
          reject: (err: Error) => {
            if (err instanceof RespError && refused === undefined) {
              refused = `Redis refused ${String(args[0])} on the ledger's hot-path connection (check REDIS_URL's user, password and database): ${err.message}`;
              this.options.log.error({ redisClient: 'pipeline', host, port, command: String(args[0]), err: err.message }, refused);
            }
            socket.destroy();
          },
        }));
        this.pending.splice(this.pendingHead, 0, ...entries);
        socket.write(hello.map(encodeCommand).join(''));
      });
      socket.once('close', () => {
        clearTimeout(timer);
        this.onClose(socket);
        reject(new PipelineUnavailableError(refused ?? `cannot reach Redis at ${host}:${port}`));
      });
      socket.on('error', (err) => this.options.log.debug({ err: err.message }, 'redis pipeline socket error'));
    });
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    this.ready = false;
    this.socket = undefined;
    this.outgoing = [];
    this.failAll(
      new PipelineUnavailableError('Connection is closed: the ledger connection broke; the outcome of the last requests is unknown'),
    );
    if (this.closed) return;
    // Tripped only now, with the connection reset: the breaker's probe goes out on the next one.
    this.options.breaker?.trip(this.breakReason ?? 'the ledger connection broke');
    this.breakReason = undefined;
    // The first attempt is immediate: a broken connection after a timeout is usually fine again at once.
    const delayMs = this.reconnectAttempt === 0 ? 0 : Math.min(50 * 2 ** this.reconnectAttempt, RECONNECT_MAX_DELAY_MS);
    this.reconnectAttempt++;
    setTimeout(() => {
      if (!this.closed) this.open().catch(() => undefined);
    }, delayMs).unref();
  }

  private failAll(err: Error): void {
    const waiting = this.pending.slice(this.pendingHead);
    this.pending.length = 0;
    this.pendingHead = 0;
    for (const p of waiting) p.reject(err);
  }

  private checkDeadlines(): void {
    const oldest = this.pending[this.pendingHead];
    if (oldest === undefined || Date.now() < oldest.deadlineMs) return;
    if (this.socket === undefined || !this.ready) {
      // Still (re)connecting: nothing was sent, and it is too late for what waits.
      this.outgoing = [];
      this.failAll(new PipelineUnavailableError('Connection is closed: the ledger did not come back in time'));
      this.options.breaker?.trip('the ledger connection did not come back in time');
      return;
    }
    this.options.log.warn({ timeoutMs: this.options.commandTimeoutMs }, 'redis pipeline: command timed out; reconnecting');
    this.breakReason = `a ledger command got no reply within ${this.options.commandTimeoutMs} ms`;
    // Replies are matched in order, so a late one would be matched to the wrong command: start over.
    this.socket.destroy();
  }

  private onReply(reply: RespReply | RespError): void {
    const next = this.pending[this.pendingHead];
    if (next === undefined) {
      this.socket?.destroy(new Error('Redis sent a reply nobody asked for'));
      return;
    }
    this.pending[this.pendingHead++] = undefined as unknown as Pending;
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
    if (reply instanceof RespError) next.reject(reply);
    else next.resolve(reply);
  }

  /**
   * The breaker opened: every waiting caller is answered now. Commands not yet written are dropped
   * (nothing was sent); those written keep their place, so later replies still match in order.
   */
  private release(reason: string): void {
    const err = new LedgerDownError('pipeline', reason, true);
    const unsent = this.outgoing.length;
    this.outgoing = [];
    const dropped = this.pending.splice(this.pending.length - unsent, unsent);
    for (let i = this.pendingHead; i < this.pending.length; i++) {
      const p = this.pending[i];
      if (p === undefined) continue;
      const reject = p.reject;
      p.resolve = ignore;
      p.reject = ignore;
      reject(err);
    }
    const refused = new LedgerDownError('pipeline', reason, false);
    for (const p of dropped) p.reject(refused);
  }

  /** Sends one command; resolves with its reply, rejects with a RespError reply or when unavailable. */
  command(args: readonly (string | number)[]): Promise<RespReply> {
    const breaker = this.options.breaker;
    if (breaker?.isOpen === true) return breaker.admit('pipeline').then(() => this.send(args));
    return this.send(args);
  }

  /** A command past the breaker (its probe). */
  private send(args: readonly (string | number)[]): Promise<RespReply> {
    if (this.closed) return Promise.reject(new PipelineUnavailableError('Connection is closed: the switch is stopping'));
    if (this.pending.length - this.pendingHead >= this.options.maxPending) {
      return Promise.reject(
        new PipelineUnavailableError(`Connection is busy: ${this.options.maxPending} ledger commands already wait for Redis`),
      );
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject, deadlineMs: Date.now() + this.options.commandTimeoutMs });
      this.outgoing.push(encodeCommand(args));
      // While (re)connecting, the command waits (until its deadline) and goes out on connect.
      if (this.ready && !this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outgoing.length === 0 || this.socket === undefined || !this.ready) return;
    const batch = this.outgoing.length === 1 ? (this.outgoing[0] ?? '') : this.outgoing.join('');
    this.outgoing = [];
    this.socket.write(batch);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.watchdog);
    this.socket?.end();
    this.socket?.destroy();
    this.failAll(new PipelineUnavailableError('Connection is closed: the switch is stopping'));
  }
}
