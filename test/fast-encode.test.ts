// The hand-written encoders for Authorize answers write exactly the bytes ts-proto writes.
import { describe, expect, it } from 'vitest';
import { DeclineReason, Outcome } from '../proto/gen/cardswitch/v1/common.js';
import { AuthorizeResponse, StreamedAuthorizeResponse } from '../proto/gen/cardswitch/v1/pos.js';
import { encodeAuthorizeResponse, encodeStreamedAuthorizeResponse } from '../switch/grpc/fast-encode.js';
import { prng } from './helpers/prng.js';

const tsProto = (m: AuthorizeResponse): Buffer => Buffer.from(AuthorizeResponse.encode(m).finish());
const tsProtoStreamed = (m: StreamedAuthorizeResponse): Buffer => Buffer.from(StreamedAuthorizeResponse.encode(m).finish());

const APPROVED: AuthorizeResponse = {
  outcome: Outcome.OUTCOME_APPROVED,
  declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
  displayText: '支付成功 12.50元 余额987.50元',
  balanceAfterFen: 98_750,
  transactionId: '1795753589464-0',
  amountFen: 1250,
  cardNumber: '20230001',
  pinAttemptsLeft: 0,
  decidedAtMs: 1_795_753_589_408,
};

function randomNumber(r: () => number): number {
  const kind = r();
  if (kind < 0.3) return 0;
  if (kind < 0.5) return Math.floor(r() * 128);
  if (kind < 0.7) return Math.floor(r() * 2 ** 32);
  if (kind < 0.9) return Math.floor(r() * Number.MAX_SAFE_INTEGER);
  return [127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER][Math.floor(r() * 9)]!;
}

function randomText(r: () => number): string {
  if (r() < 0.3) return '';
  const alphabet = [
    'a',
    'Z',
    '0',
    ' ',
    '|',
    '元',
    '余额',
    '支付成功',
    'é',
    '😀',
    '\u0000',
    '\u007f',
    '\u0080',
    '\u07ff',
    '\u0800',
    '\uffff',
  ];
  let text = '';
  const length = Math.floor(r() * 40);
  for (let i = 0; i < length; i++) text += alphabet[Math.floor(r() * alphabet.length)];
  return r() < 0.05 ? text.repeat(20) : text;
}

function randomResponse(r: () => number): AuthorizeResponse {
  return {
    outcome: Math.floor(r() * 4),
    declineReason: r() < 0.5 ? 0 : Math.floor(r() * 12),
    displayText: randomText(r),
    balanceAfterFen: randomNumber(r),
    transactionId: randomText(r),
    amountFen: randomNumber(r),
    cardNumber: randomText(r),
    pinAttemptsLeft: r() < 0.8 ? 0 : Math.floor(r() * 6),
    decidedAtMs: randomNumber(r),
  };
}

describe('encodeAuthorizeResponse', () => {
  it('writes the bytes ts-proto writes for an approval, a decline and an empty answer', () => {
    const declined: AuthorizeResponse = {
      ...APPROVED,
      outcome: Outcome.OUTCOME_DECLINED,
      declineReason: DeclineReason.DECLINE_REASON_WRONG_PIN,
      transactionId: '',
      pinAttemptsLeft: 3,
    };
    const empty = AuthorizeResponse.fromPartial({});
    for (const m of [APPROVED, declined, empty]) {
      expect(encodeAuthorizeResponse(m).equals(tsProto(m))).toBe(true);
      expect(AuthorizeResponse.decode(encodeAuthorizeResponse(m))).toEqual(m);
    }
    expect(encodeAuthorizeResponse(empty).length).toBe(0);
  });

  it('matches ts-proto over 5,000 random answers: every field present or not, multi-byte text, varint boundaries', () => {
    const r = prng(20261127);
    for (let i = 0; i < 5000; i++) {
      const m = randomResponse(r);
      const fast = encodeAuthorizeResponse(m);
      const reference = tsProto(m);
      if (!fast.equals(reference))
        throw new Error(`case ${i} differs: ${JSON.stringify(m)}\n fast ${fast.toString('hex')}\n ts-proto ${reference.toString('hex')}`);
    }
  });

  it('hands what its fast path does not cover (negative numbers) to ts-proto, with the same bytes', () => {
    const negative = { ...APPROVED, balanceAfterFen: -1, amountFen: -(2 ** 40), outcome: -1 as Outcome };
    expect(encodeAuthorizeResponse(negative).equals(tsProto(negative))).toBe(true);
  });
});

describe('encodeStreamedAuthorizeResponse', () => {
  it('matches ts-proto for answers under random tags, for tag 0, and for refusals (ts-proto path)', () => {
    const r = prng(7);
    for (let i = 0; i < 2000; i++) {
      const m: StreamedAuthorizeResponse = { tag: randomNumber(r), response: randomResponse(r) };
      const fast = encodeStreamedAuthorizeResponse(m);
      if (!fast.equals(tsProtoStreamed(m))) throw new Error(`case ${i} differs: ${JSON.stringify(m)}`);
    }
    const refusal: StreamedAuthorizeResponse = { tag: 42, error: { code: 16, message: 'terminal "XY-1" is not registered' } };
    expect(encodeStreamedAuthorizeResponse(refusal).equals(tsProtoStreamed(refusal))).toBe(true);
    const noTag: StreamedAuthorizeResponse = { tag: 0, response: APPROVED };
    expect(encodeStreamedAuthorizeResponse(noTag).equals(tsProtoStreamed(noTag))).toBe(true);
    expect(StreamedAuthorizeResponse.decode(encodeStreamedAuthorizeResponse({ tag: 9, response: APPROVED }))).toEqual({
      tag: 9,
      response: APPROVED,
      error: undefined,
    });
  });
});
