// Terminal kinds may call only the RPCs they need, per RPC (issue 9, item 5): a settlement POS paying
// with Authorize, or a water controller reaching the debit script, was the hole. Every forbidden
// (kind, RPC) pair is refused PERMISSION_DENIED with a message naming the kind and the RPC, before
// anything is read or written (the key space is unchanged); every allowed pair still works. The
// expected table is written out here on its own, from what each device does (README "The API in brief").
import { status as Status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outcome, RechargeChannel, UtilityKind } from '../proto/gen/cardswitch/v1/common.js';
import { KioskServiceClient, KioskServiceService } from '../proto/gen/cardswitch/v1/kiosk.js';
import { PosServiceService, type PosServiceClient, type StreamedAuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import type { SwitchApp } from '../switch/app.js';
import type { NewTerminal, TerminalKind } from '../switch/domain/terminals.js';
import { kioskClient } from './helpers/clients.js';
import { call, dumpKeySpace, grpcError, openCard, posClient, startTestSwitch, terminalMetadata } from './helpers/switch.js';

const KINDS: readonly TerminalKind[] = ['canteen', 'shop', 'settlement', 'water', 'kiosk'];

const TERMINALS: Readonly<Record<TerminalKind, NewTerminal>> = {
  canteen: { id: 'POS-K1', kind: 'canteen', merchantId: 'CANTEEN1', location: '第一食堂', secret: 'pos-k1-secret-0123456789' },
  shop: { id: 'SHOP-K1', kind: 'shop', merchantId: 'SHOP1', location: '教育超市', secret: 'shop-k1-secret-0123456789' },
  settlement: {
    id: 'SETTLE-K1',
    kind: 'settlement',
    merchantId: 'BATH1',
    location: '小营浴室 结算机',
    secret: 'settle-k1-secret-0123456789',
  },
  water: { id: 'WATER-K1', kind: 'water', merchantId: 'BATH1', location: '小营浴室 1号淋浴', secret: 'water-k1-secret-0123456789' },
  kiosk: { id: 'KIOSK-K1', kind: 'kiosk', merchantId: 'CARDOFFICE', location: '学四公寓 大厅', secret: 'kiosk-k1-secret-0123456789' },
};

const SALES: readonly TerminalKind[] = ['canteen', 'shop'];
/** The specification: who may call what. */
const ALLOWED: Readonly<Record<string, readonly TerminalKind[]>> = {
  'PosService/Authorize': SALES,
  'PosService/AuthorizeStream': SALES,
  'PosService/Reverse': SALES,
  'PosService/Refund': SALES,
  'PosService/QueryTransaction': SALES,
  'PosService/Inquire': ['canteen', 'shop', 'settlement', 'water'],
  'PosService/WaterDebit': ['water'],
  'PosService/Settle': ['settlement'],
  'KioskService/IdentifyCard': ['kiosk'],
  'KioskService/Recharge': ['kiosk'],
  'KioskService/RechargeOrderState': ['kiosk'],
  'KioskService/CancelRechargeOrder': ['kiosk'],
  'KioskService/ReportLoss': ['kiosk'],
  'KioskService/CancelLoss': ['kiosk'],
  'KioskService/ChangePassword': ['kiosk'],
  'KioskService/Statement': ['kiosk'],
  'KioskService/PayUtilityFee': ['kiosk'],
};

const CARD_NO = '20230001';
const SERIAL = 'AB12CD34';
const OPENING_FEN = 100_000;

let app: SwitchApp;
let pos: PosServiceClient;
let kiosk: KioskServiceClient;
let nextSequence = 1;

beforeAll(async () => {
  app = await startTestSwitch('kinds');
  for (const terminal of Object.values(TERMINALS)) await app.terminals.register(terminal);
  await openCard(app, CARD_NO, SERIAL, OPENING_FEN);
  pos = posClient(app);
  kiosk = kioskClient(app);
});

afterAll(async () => {
  pos.close();
  kiosk.close();
  await app.stop();
});

const tap = { card: { cardSerial: SERIAL } };

/** A request of `rpc` from `terminal` that its handler would carry out (or that reaches its handler). */
function requestOf(rpc: string, terminal: NewTerminal): { client: unknown; method: string; request: unknown } {
  const terminalId = terminal.id;
  const sequenceNumber = nextSequence++;
  switch (rpc) {
    case 'PosService/Authorize':
      return { client: pos, method: 'authorize', request: { terminalId, sequenceNumber, amountFen: 1_000, credential: tap, pin: '' } };
    case 'PosService/Reverse':
      return {
        client: pos,
        method: 'reverse',
        request: { terminalId, originalSequenceNumber: sequenceNumber, amountFen: 1_000, credential: tap },
      };
    case 'PosService/Refund':
      return {
        client: pos,
        method: 'refund',
        request: {
          terminalId,
          sequenceNumber,
          cardNumber: CARD_NO,
          originalTerminalId: terminalId,
          originalSequenceNumber: 1,
          amountFen: 100,
        },
      };
    case 'PosService/Inquire':
      return { client: pos, method: 'inquire', request: { terminalId, credential: tap } };
    case 'PosService/QueryTransaction':
      return { client: pos, method: 'queryTransaction', request: { terminalId, sequenceNumber, transactionId: '' } };
    case 'PosService/WaterDebit':
      return { client: pos, method: 'waterDebit', request: { terminalId, sequenceNumber, amountFen: 100, credential: tap } };
    case 'PosService/Settle':
      return { client: pos, method: 'settle', request: { terminalId, sequenceNumber, credential: tap } };
    case 'KioskService/IdentifyCard':
      return { client: kiosk, method: 'identifyCard', request: { card: { cardSerial: SERIAL } } };
    case 'KioskService/Recharge':
      return {
        client: kiosk,
        method: 'recharge',
        request: {
          cardholder: tap,
          channel: RechargeChannel.RECHARGE_CHANNEL_WECHAT,
          requestId: `wx-kinds-${sequenceNumber}`,
          amountFen: 1_000,
        },
      };
    case 'KioskService/RechargeOrderState':
      return { client: kiosk, method: 'rechargeOrderState', request: { orderId: 'R00a000000000000000000000000' } };
    case 'KioskService/CancelRechargeOrder':
      return { client: kiosk, method: 'cancelRechargeOrder', request: { orderId: 'R00a000000000000000000000000' } };
    case 'KioskService/ReportLoss':
      return { client: kiosk, method: 'reportLoss', request: { cardholder: { personNumber: 'NOSUCH01' }, password: '123456' } };
    case 'KioskService/CancelLoss':
      return { client: kiosk, method: 'cancelLoss', request: { cardholder: { personNumber: 'NOSUCH01' }, password: '123456' } };
    case 'KioskService/ChangePassword':
      return {
        client: kiosk,
        method: 'changePassword',
        request: { cardholder: { personNumber: 'NOSUCH01' }, oldPassword: '123456', newPassword: '654321' },
      };
    case 'KioskService/Statement':
      return {
        client: kiosk,
        method: 'statement',
        request: { cardholder: { personNumber: 'NOSUCH01' }, password: '123456', query: undefined },
      };
    case 'KioskService/PayUtilityFee':
      return {
        client: kiosk,
        method: 'payUtilityFee',
        request: {
          cardholder: { personNumber: 'NOSUCH01' },
          password: '123456',
          sequenceNumber,
          kind: UtilityKind.UTILITY_KIND_NETWORK,
          networkAccount: 'net001',
          building: '',
          room: '',
          amountFen: 1_000,
        },
      };
    default:
      throw new Error(`no request for ${rpc}`);
  }
}

function send(rpc: string, kind: TerminalKind): Promise<unknown> {
  const terminal = TERMINALS[kind];
  const { client, method, request } = requestOf(rpc, terminal);
  return call(client, method, request, terminalMetadata(terminal));
}

const unaryRpcs = Object.keys(ALLOWED).filter((rpc) => rpc !== 'PosService/AuthorizeStream');
const forbidden = unaryRpcs.flatMap((rpc) => KINDS.filter((kind) => !(ALLOWED[rpc] ?? []).includes(kind)).map((kind) => ({ rpc, kind })));

describe('the table', () => {
  it('names every RPC of PosService and KioskService', () => {
    const served = [...Object.values(PosServiceService).map((m) => m.path), ...Object.values(KioskServiceService).map((m) => m.path)].map(
      (path) => path.replace('/cardswitch.v1.', ''),
    );
    expect(served.sort()).toEqual(Object.keys(ALLOWED).sort());
  });
});

describe('forbidden pairs', () => {
  it.each(forbidden)('$kind calling $rpc: PERMISSION_DENIED naming both, nothing changes', async ({ rpc, kind }) => {
    const before = await dumpKeySpace(app.redis, app.keys.prefix);

    const err = await grpcError(send(rpc, kind));

    expect(err.code).toBe(Status.PERMISSION_DENIED);
    expect(err.details).toContain(kind);
    expect(err.details).toContain(rpc);
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
  });

  it('AuthorizeStream: a settlement POS, a water controller and a kiosk are refused per message; nothing changes', async () => {
    const before = await dumpKeySpace(app.redis, app.keys.prefix);
    const refused: TerminalKind[] = ['settlement', 'water', 'kiosk'];
    const answers = await streamPayments(refused);

    for (const [i, kind] of refused.entries()) {
      const answer = answers.find((a) => a.tag === i + 1);
      expect(answer?.error?.code, kind).toBe(Status.PERMISSION_DENIED);
      expect(answer?.error?.message).toContain(kind);
      expect(answer?.error?.message).toContain('PosService/AuthorizeStream');
    }
    expect(await dumpKeySpace(app.redis, app.keys.prefix)).toEqual(before);
  });
});

/** Sends one 10.00 card payment per kind on one stream (tags 1, 2, ...) and collects the answers. */
function streamPayments(kinds: readonly TerminalKind[]): Promise<StreamedAuthorizeResponse[]> {
  const stream = pos.authorizeStream();
  const answers: StreamedAuthorizeResponse[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (answer: StreamedAuthorizeResponse) => answers.push(answer));
    stream.on('error', reject);
    stream.on('end', () => resolve(answers));
    for (const [i, kind] of kinds.entries()) {
      const terminal = TERMINALS[kind];
      const request = { terminalId: terminal.id, sequenceNumber: nextSequence++, amountFen: 1_000, credential: tap, pin: '' };
      stream.write({ tag: i + 1, terminalSecret: terminal.secret, request });
    }
    stream.end();
  });
}

describe('allowed pairs still work', () => {
  it.each(SALES)('a %s terminal pays, reverses, refunds and inquires', async (kind) => {
    const terminal = TERMINALS[kind];
    const metadata = terminalMetadata(terminal);
    const payment = { terminalId: terminal.id, sequenceNumber: nextSequence++, amountFen: 1_000, credential: tap, pin: '' };
    expect(await call(pos, 'authorize', payment, metadata)).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED });
    const refund = {
      terminalId: terminal.id,
      sequenceNumber: nextSequence++,
      cardNumber: CARD_NO,
      originalTerminalId: terminal.id,
      originalSequenceNumber: payment.sequenceNumber,
      amountFen: 300,
    };
    expect(await call(pos, 'refund', refund, metadata)).toMatchObject({ refundableLeftFen: 700 });
    const reverse = { terminalId: terminal.id, originalSequenceNumber: payment.sequenceNumber, amountFen: 1_000, credential: tap };
    expect(await call(pos, 'reverse', reverse, metadata)).toMatchObject({ result: 1 });
    expect(await call(pos, 'inquire', { terminalId: terminal.id, credential: tap }, metadata)).toMatchObject({
      found: true,
      cardNumber: CARD_NO,
    });
  });

  it('canteen and shop terminals pay on AuthorizeStream', async () => {
    const answers = await streamPayments(SALES);
    expect(answers.map((a) => a.response?.outcome)).toEqual([Outcome.OUTCOME_APPROVED, Outcome.OUTCOME_APPROVED]);
  });

  it('a settlement POS settles and inquires; a water controller debits the wallet and inquires', async () => {
    const settled = await send('PosService/Settle', 'settlement');
    expect(settled).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED });
    expect(await send('PosService/WaterDebit', 'water')).toMatchObject({ outcome: Outcome.OUTCOME_APPROVED });
    expect(await send('PosService/Inquire', 'settlement')).toMatchObject({ found: true, cardNumber: CARD_NO });
    expect(await send('PosService/Inquire', 'water')).toMatchObject({ found: true, cardNumber: CARD_NO });
  });

  it('a kiosk identifies a card and recharges it; its password RPCs reach their handler', async () => {
    expect(await send('KioskService/IdentifyCard', 'kiosk')).toMatchObject({ card: { cardNumber: CARD_NO } });
    // This switch has no payment channel: the handler says so (FAILED_PRECONDITION), so the kind check let it through.
    const recharge = await grpcError(send('KioskService/Recharge', 'kiosk'));
    expect(recharge.code).toBe(Status.FAILED_PRECONDITION);
    expect(recharge.details).toMatch(/no wechat channel/);
    for (const rpc of [
      'RechargeOrderState',
      'CancelRechargeOrder',
      'ReportLoss',
      'CancelLoss',
      'ChangePassword',
      'Statement',
      'PayUtilityFee',
    ]) {
      // An unknown student number (or order): the handler looked it up (NOT_FOUND), so the kind check let it through.
      const err = await grpcError(send(`KioskService/${rpc}`, 'kiosk'));
      expect({ rpc, code: err.code }).toEqual({ rpc, code: Status.NOT_FOUND });
    }
  });
});
