// A payment-code payment racing the end of the binding it pays under: the payer's channel binding
// ended, the e-card unbound (which ends the card's payers), the e-card passed to a new holder, the card
// reported lost. The switch looks the payer's card up, then journals the sale in the card's shard: the
// sale must be taken only while that binding still stands, checked in the script that takes it
// (channel-paid.lua), and the payer's money goes back when it no longer does.
//
// Real servers: the switch that takes the payments (A) reaches Redis through a relay this file runs,
// which can hold A's traffic at the sale's script (after the payer check passed, before the sale is
// taken); a second switch (B) on the same ledger, connected directly, ends the binding meanwhile. The
// storm fires 300 such races at once (plus a campus QR code minted before each e-card's end) and reads
// the order Redis ran the scripts in from MONITOR: no payment approved after the end of its binding,
// every payer's money accounted for, and the audit passes.
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import type { AuthorizeRequest, AuthorizeResponse, PosServiceClient, QueryTransactionRequest } from '../proto/gen/cardswitch/v1/pos.js';
import { startSwitch, type SwitchApp } from '../switch/app.js';
import { startChannelSimulators, type ChannelSimulators } from '../switch/channels/index.js';
import { bindChannelPayer, channelPayersOfCard, unbindChannelPayer, type PayerChannel } from '../switch/domain/channel-payers.js';
import { outTradeNoOf } from '../switch/domain/channel-payment.js';
import { reportCardLost } from '../switch/domain/card-status.js';
import { bindEcard, issueCampusQr, unbindEcard, type BindingForm } from '../switch/domain/ecard.js';
import { auditLedger } from '../switch/ledger/audit.js';
import { followUpCount } from '../switch/ledger/channel-payments.js';
import { createLogger } from '../switch/log.js';
import { passwordHash } from './helpers/clients.js';
import { testRedisUrl } from './helpers/redis.js';
import { call, openCard, POS_TERMINAL, posClient, readJournal, terminalMetadata, testConfig } from './helpers/switch.js';

const PIN = '246810';
const DOC = '11010519900307123X';
const PHONE = '13800138000';
const OPENING_FEN = 10_000;
const PAYER_FEN = 100_000;
const CHANNEL_CONFIG = { CHANNEL_POLL_INTERVAL_MS: '30', CHANNEL_WECHAT_BUDGET_MS: '20000', CHANNEL_ALIPAY_BUDGET_MS: '20000' };

/** A TCP relay to Redis that can hold one connection's traffic from the first command that matches. */
class HoldingRelay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private armed: { readonly match: (chunk: Buffer) => boolean; readonly reached: () => void } | undefined;
  private releases: (() => void)[] = [];
  private taps = new Set<{ readonly match: (text: string) => boolean; count: number; readonly seen: () => void }>();

  constructor(
    private readonly host: string,
    private readonly upstreamPort: number,
  ) {
    this.server = net.createServer((client) => this.relay(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect(this.upstreamPort, this.host);
    this.sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.pipe(client);
    let held: Buffer[] | undefined;
    client.on('data', (chunk: Buffer) => {
      if (this.taps.size > 0) this.look(chunk.toString('latin1'));
      if (held !== undefined) {
        held.push(chunk);
        return;
      }
      const armed = this.armed;
      if (armed === undefined || !armed.match(chunk)) {
        upstream.write(chunk);
        return;
      }
      this.armed = undefined;
      held = [chunk];
      this.releases.push(() => {
        for (const c of held ?? []) upstream.write(c);
        held = undefined;
      });
      armed.reached();
    });
  }

  private look(text: string): void {
    for (const tap of this.taps) {
      if (!tap.match(text) || --tap.count > 0) continue;
      this.taps.delete(tap);
      tap.seen();
    }
  }

  /** Resolves when the `nth` chunk `match` accepts passes (on any connection); nothing is held. */
  tapAt(match: (text: string) => boolean, nth: number): Promise<void> {
    return new Promise<void>((seen) => this.taps.add({ match, count: nth, seen }));
  }

  /** Holds the connection that sends the first chunk `match` accepts, until release(). */
  holdAt(match: (chunk: Buffer) => boolean): { readonly reached: Promise<void>; release(): void } {
    let reached!: () => void;
    const promise = new Promise<void>((resolve) => (reached = resolve));
    this.armed = { match, reached };
    return {
      reached: promise,
      release: () => {
        this.armed = undefined;
        const releases = this.releases;
        this.releases = [];
        for (const r of releases) r();
      },
    };
  }

  /** Forgets the taps that have not fired. */
  untapAll(): void {
    this.taps.clear();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** MONITOR on its own connection: the commands Redis ran, in the order it ran them (none run by a script). */
class Monitor {
  readonly lines: string[][] = [];
  private constructor(private readonly socket: net.Socket) {}

  static async start(url: string): Promise<Monitor> {
    const { hostname, port } = new URL(url);
    const socket = net.connect(Number(port), hostname);
    const monitor = new Monitor(socket);
    let pending = '';
    let on!: () => void;
    const ok = new Promise<void>((resolve) => (on = resolve));
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      pending += text;
      let end: number;
      while ((end = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (line === '+OK') on();
        else if (line.startsWith('+') && !/^\+\S+ \[\d+ lua\]/.test(line)) monitor.lines.push(parseMonitorArgs(line));
      }
    });
    socket.write('MONITOR\r\n');
    await ok;
    return monitor;
  }

  stop(): void {
    this.socket.destroy();
  }
}

/** The quoted arguments of a MONITOR line (sdscatrepr's escapes). */
function parseMonitorArgs(line: string): string[] {
  const args: string[] = [];
  const escapes: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', '"': '"', '\\': '\\' };
  let i = line.indexOf('] "');
  if (i < 0) return args;
  i += 2;
  while (i < line.length) {
    if (line[i] !== '"') {
      i++;
      continue;
    }
    let arg = '';
    i++;
    while (i < line.length && line[i] !== '"') {
      if (line[i] === '\\') {
        const next = line[i + 1] ?? '';
        if (next === 'x') {
          arg += String.fromCharCode(parseInt(line.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          arg += escapes[next] ?? next;
          i += 2;
        }
      } else {
        arg += line[i];
        i++;
      }
    }
    args.push(arg);
    i++;
  }
  return args;
}

let sims: ChannelSimulators;
let relay: HoldingRelay;
/** Takes the payments; reaches Redis through the relay. */
let app: SwitchApp;
/** Ends the bindings; reaches the same Redis directly. */
let other: SwitchApp;
let pos: PosServiceClient;
let pwdHash = '';
let sequence = 0;
let cardSeq = 0;

beforeAll(async () => {
  const config = testConfig('cprace', CHANNEL_CONFIG);
  const log = createLogger(config.logLevel);
  sims = await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs: 0 });
  const direct = new URL(testRedisUrl());
  relay = new HoldingRelay(direct.hostname, Number(direct.port));
  const relayed = new URL(direct.toString());
  relayed.hostname = '127.0.0.1';
  relayed.port = String(await relay.listen());
  app = await startSwitch({ ...config, redisUrl: relayed.toString() }, log, Date.now, { channels: sims.channels, gateway: false });
  other = await startSwitch(config, log, Date.now, { grpc: false, gateway: false });
  await app.terminals.register(POS_TERMINAL);
  pos = posClient(app);
  pwdHash = await passwordHash(app, PIN);
}, 30_000);

afterAll(async () => {
  pos?.close();
  await app?.stop();
  await other?.stop();
  await relay?.close();
  await sims?.stop();
});

afterEach(async () => {
  const report = await auditLedger(other.redis, other.keys);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
});

interface BoundCard {
  readonly cardNo: string;
  readonly userId: string;
  readonly channel: PayerChannel;
  readonly payer: string;
}

/** A synced card whose e-card `userId` holds, and whose holder bound a payer of `channel` to it. */
async function boundCard(channel: PayerChannel): Promise<BoundCard> {
  cardSeq += 1;
  const cardNo = `7900${String(cardSeq).padStart(4, '0')}`;
  await openCard(other, cardNo, `CR${cardNo}`, OPENING_FEN, {
    pwd: pwdHash,
    doct: 'R',
    docn: DOC,
    phone: PHONE,
    sno: `R${cardNo}`,
    sync: '1',
  });
  await other.redis.set(other.keys.personNumber(`R${cardNo}`), cardNo);
  const userId = `wecom:holder${cardNo}`;
  await bindEcard(other.context, userId, bindingForm(cardNo));
  let payer: string;
  if (channel === 'wechat') {
    payer = `oRace-${cardNo}-wechat-payer`;
    sims.wechat.setBalance(payer, PAYER_FEN);
  } else {
    payer = sims.alipay.newPayer({ balanceFen: PAYER_FEN });
  }
  await bindChannelPayer(other.context, cardNo, channel, payer, userId);
  return { cardNo, userId, channel, payer };
}

function bindingForm(cardNo: string): BindingForm {
  return {
    bindingType: 'student',
    personNumber: `R${cardNo}`,
    password: PIN,
    documentType: 'resident_id',
    documentNumber: DOC,
    phone: PHONE,
    consent: true,
  };
}

function codeOf(card: BoundCard): string {
  return card.channel === 'wechat' ? sims.wechat.newCode(card.payer) : sims.alipay.newCode(card.payer);
}

function payerBalance(card: BoundCard): number {
  return card.channel === 'wechat' ? sims.wechat.balanceOf(card.payer) : sims.alipay.balanceOf(card.payer);
}

function authorize(seq: number, credential: AuthorizeRequest['credential'], amountFen: number): Promise<AuthorizeResponse> {
  return call<AuthorizeRequest, AuthorizeResponse>(
    pos,
    'authorize',
    { terminalId: POS_TERMINAL.id, sequenceNumber: seq, amountFen, credential, pin: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

/** The payment's answer now (QueryTransaction): a pending one is decided by the follow-up. */
function query(seq: number): Promise<AuthorizeResponse> {
  return call<QueryTransactionRequest, AuthorizeResponse>(
    pos,
    'queryTransaction',
    { terminalId: POS_TERMINAL.id, sequenceNumber: seq, transactionId: '' },
    terminalMetadata(POS_TERMINAL),
  );
}

type Ending = 'channel_unbind' | 'ecard_unbind' | 'new_holder' | 'loss';

/** Ends the binding the card's payer pays under, through the other switch. */
async function end(card: BoundCard, ending: Ending): Promise<void> {
  const ctx = other.context;
  switch (ending) {
    case 'channel_unbind':
      expect(await unbindChannelPayer(ctx, card.cardNo, card.channel)).toBe(card.payer);
      return;
    case 'ecard_unbind':
      await unbindEcard(ctx, card.userId, PIN);
      return;
    case 'new_holder':
      await unbindEcard(ctx, card.userId, PIN);
      await bindEcard(ctx, `wecom:next${card.cardNo}`, bindingForm(card.cardNo));
      return;
    case 'loss':
      await reportCardLost(ctx, card.cardNo);
      return;
  }
}

/** The journal kinds of one payment (cpay: its sale, cprev: the sale's reversal). */
async function saleKinds(card: BoundCard, outTradeNo: string): Promise<string[]> {
  const entries = await readJournal(other.redis, other.keys.journalOfCard(card.cardNo));
  return entries.filter((e) => e.fields['ot'] === outTradeNo).map((e) => e.fields['k'] ?? '');
}

/** Waits until no payment is left to follow up (the give-backs are confirmed by the channel). */
async function followUpsDone(): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await followUpCount(other.context)) > 0) {
    if (Date.now() > deadline) throw new Error(`${await followUpCount(other.context)} payments still followed up after 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a code payment whose payer check passed just before its binding ended', () => {
  const cases: readonly { readonly ending: Ending; readonly channel: PayerChannel; readonly reason: DeclineReason }[] = [
    { ending: 'channel_unbind', channel: 'wechat', reason: DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND },
    { ending: 'ecard_unbind', channel: 'alipay', reason: DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND },
    { ending: 'new_holder', channel: 'wechat', reason: DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND },
    { ending: 'new_holder', channel: 'alipay', reason: DeclineReason.DECLINE_REASON_PAYER_NOT_BOUND },
    { ending: 'loss', channel: 'alipay', reason: DeclineReason.DECLINE_REASON_CARD_LOST },
  ];
  for (const { ending, channel, reason } of cases) {
    it(`${channel}, ${ending}: declined, no sale on the card, the payer's money back`, async () => {
      const card = await boundCard(channel);
      const seq = ++sequence;
      const outTradeNo = outTradeNoOf(app.context, POS_TERMINAL.id, seq);
      const paidSha = app.context.scripts.shaOf('channel-paid');
      // Held where A sends the sale's script for this card: the payer was looked up and found bound.
      const hold = relay.holdAt((chunk) => {
        const text = chunk.toString('latin1');
        return text.includes(paidSha) && text.includes('$3\r\npay\r\n') && text.includes(`\r\n${outTradeNo}\r\n`);
      });
      const answer = authorize(seq, { thirdParty: { code: codeOf(card) } }, 700);
      try {
        const first = await Promise.race([hold.reached.then(() => 'held' as const), answer]);
        expect(first, 'the payment was answered before its sale was taken').toBe('held');
        await end(card, ending);
      } finally {
        hold.release();
      }
      const paid = await answer;
      expect([paid.outcome, paid.declineReason]).toEqual([Outcome.OUTCOME_DECLINED, reason]);
      await followUpsDone();
      expect(payerBalance(card)).toBe(PAYER_FEN);
      expect(await saleKinds(card, outTradeNo)).toEqual([]);
      expect(Number(await other.redis.hget(other.keys.account(card.cardNo), 'bal'))).toBe(OPENING_FEN);
      if (ending === 'new_holder') expect(await channelPayersOfCard(other.context, card.cardNo)).toEqual({});
    });
  }
});

describe('the storm: 300 payments, each racing the end of its binding', () => {
  it('approves none after its binding ended, gives every payer back what was not approved, and the audit passes', async () => {
    const endings: readonly Ending[] = ['channel_unbind', 'ecard_unbind', 'new_holder', 'loss'];
    const cards: { card: BoundCard; ending: Ending; seq: number; qrSeq: number; qr: string }[] = [];
    for (let batch = 0; batch < 300; batch += 25) {
      const made = await Promise.all(
        Array.from({ length: 25 }, async (_, j) => {
          const i = batch + j;
          const card = await boundCard(i % 2 === 0 ? 'wechat' : 'alipay');
          const ending = endings[i % endings.length] as Ending;
          // A campus QR code minted before the e-card's end (or its loss) must not pay after it either.
          const qr = ending === 'channel_unbind' ? '' : (await issueCampusQr(other.context, card.userId, card.cardNo)).code;
          return { card, ending, qr };
        }),
      );
      for (const m of made) cards.push({ ...m, seq: ++sequence, qrSeq: ++sequence });
    }

    const monitor = await Monitor.start(testRedisUrl());
    let answers: { code: AuthorizeResponse; qr: AuthorizeResponse | undefined }[];
    try {
      answers = await Promise.all(
        cards.map(async ({ card, ending, seq, qrSeq, qr }) => {
          // The end is fired as the payment looks its payer up once the channel has answered (WeChat's
          // first look is before charging), and the campus QR code is presented with it: both race it.
          const payerKey = app.keys.channelPayer(card.channel, card.payer);
          const looked = relay.tapAt(
            (text) => /\r\nget\r\n/i.test(text) && text.includes(`\r\n${payerKey}\r\n`),
            card.channel === 'wechat' ? 2 : 1,
          );
          const code = authorize(seq, { thirdParty: { code: codeOf(card) } }, 700);
          const [, qrAnswer] = await Promise.race([looked, code]).then(() =>
            Promise.all([end(card, ending), qr === '' ? undefined : authorize(qrSeq, { campusQr: { payload: qr } }, 300)]),
          );
          return { code: await code, qr: qrAnswer };
        }),
      );
      relay.untapAll();
      await followUpsDone();
    } finally {
      monitor.stop();
    }

    const sha = {
      paid: app.context.scripts.shaOf('channel-paid'),
      ecard: app.context.scripts.shaOf('ecard-binding'),
      binding: app.context.scripts.shaOf('channel-binding'),
      status: app.context.scripts.shaOf('set-status'),
    };
    /** Where in Redis's order each card's binding ended, and each payment's sale was taken. */
    const endAt = new Map<string, number>();
    const saleAt = new Map<string, number>();
    monitor.lines.forEach((args, index) => {
      const command = (args[0] ?? '').toLowerCase();
      if (command !== 'evalsha' && command !== 'fcall') return;
      const keyCount = Number(args[2]);
      const keys = args.slice(3, 3 + keyCount);
      const argv = args.slice(3 + keyCount);
      if (command === 'fcall') {
        // authorize (a campus QR payment here): its KEYS name the request's record.
        for (const k of keys) if (k.includes(':req:')) saleAt.set(`qr|${k}`, index);
        return;
      }
      const sha1 = args[1];
      const accountKey = keys.find((k) => k.includes(':acct:'));
      if (accountKey === undefined) return;
      const ends = (sha1 === sha.ecard && argv[0] === 'unbind') || (sha1 === sha.binding && argv[0] === 'unbind') || sha1 === sha.status;
      if (ends && !endAt.has(accountKey)) endAt.set(accountKey, index);
      if (sha1 === sha.paid && argv[0] === 'pay' && argv[3] !== undefined) saleAt.set(argv[3], index);
    });

    const late: string[] = [];
    let given = 0;
    let approvedCodes = 0;
    let pendingAnswers = 0;
    for (const [i, { card, ending, seq, qrSeq }] of cards.entries()) {
      const { qr } = answers[i] ?? { qr: undefined };
      // Pending answers (a channel slow under the storm) were decided by the follow-up since.
      const code = answers[i]?.code.outcome === Outcome.OUTCOME_PENDING ? await query(seq) : answers[i]?.code;
      if (answers[i]?.code.outcome === Outcome.OUTCOME_PENDING) pendingAnswers += 1;
      const accountKey = other.keys.account(card.cardNo);
      const endedAt = endAt.get(accountKey);
      expect(endedAt, `the end of card ${card.cardNo}'s binding (${ending}) was not seen`).toBeDefined();
      const outTradeNo = outTradeNoOf(app.context, POS_TERMINAL.id, seq);
      if (code?.outcome === Outcome.OUTCOME_APPROVED) {
        approvedCodes += 1;
        const takenAt = saleAt.get(outTradeNo);
        if (takenAt === undefined || takenAt > (endedAt ?? -1)) late.push(`${card.cardNo} ${ending} ${card.channel}`);
        expect(payerBalance(card)).toBe(PAYER_FEN - 700);
        expect(await saleKinds(card, outTradeNo)).toEqual(['cpay']);
      } else {
        expect(code?.outcome).toBe(Outcome.OUTCOME_DECLINED);
        if (saleAt.has(outTradeNo)) given += 1;
        expect(payerBalance(card)).toBe(PAYER_FEN);
        expect(await saleKinds(card, outTradeNo)).toEqual([]);
      }
      // The code payment never moves the campus balance; an approved campus QR payment takes its 300.
      const balanceFen = Number(await other.redis.hget(accountKey, 'bal'));
      expect(balanceFen).toBe(OPENING_FEN - (qr?.outcome === Outcome.OUTCOME_APPROVED ? 300 : 0));
      if (qr?.outcome === Outcome.OUTCOME_APPROVED) {
        const requestKey = other.keys.request(card.cardNo, POS_TERMINAL.id, qrSeq);
        const takenAt = saleAt.get(`qr|${requestKey}`);
        if (takenAt === undefined || takenAt > (endedAt ?? -1)) late.push(`${card.cardNo} ${ending} campus QR`);
      }
    }
    expect(
      late,
      `approved after the end of their binding (${approvedCodes} approved, ${given} sales refused by channel-paid.lua, ${pendingAnswers} answered pending)`,
    ).toEqual([]);
    const report = await auditLedger(other.redis, other.keys);
    expect(report.problems).toEqual([]);
  }, 120_000);
});
