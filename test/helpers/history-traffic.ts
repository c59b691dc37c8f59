// Mixed traffic for the history tests: payments at two merchants, reversals, refunds, channel recharges,
// the small wallet (settlement and water), adjustments: every journal kind a card's statement shows.
import { expect } from 'vitest';
import { RechargeChannel } from '../../proto/gen/cardswitch/v1/common.js';
import type { SwitchApp } from '../../switch/app.js';
import type { NewTerminal } from '../../switch/domain/terminals.js';
import { adminClient, operatorMetadata } from './clients.js';
import { prng } from './prng.js';
import { call, openCard, posClient, terminalMetadata } from './switch.js';

function terminal(id: string, kind: NewTerminal['kind'], merchantId: string): NewTerminal {
  return { id, kind, merchantId, location: `${merchantId} ${id}`, secret: `${id}-secret-0123456789` };
}

export const HISTORY_POS = [
  terminal('HX-POS-1', 'canteen', 'HXC1'),
  terminal('HX-POS-2', 'canteen', 'HXC1'),
  terminal('HX-SHOP-1', 'shop', 'HXS1'),
];
const WATER = terminal('HX-WATER-1', 'water', 'HXBATH');
const SETTLE = terminal('HX-SETTLE-1', 'settlement', 'HXBATH');

/** Card serials are 8-20 hex digits. */
function serialOf(i: number): string {
  return `ABCD${String(i).padStart(6, '0')}`;
}

export function historyCardNo(i: number): string {
  return String(30_100_000 + i);
}

export class HistoryTraffic {
  private readonly sequences = new Map<string, number>();
  private readonly payments: { t: NewTerminal; sequence: number; card: number; amountFen: number }[] = [];
  private readonly random: () => number;
  private readonly pos;
  private readonly admin;
  private order = 0;

  constructor(
    private readonly app: SwitchApp,
    readonly cards: number,
    seed: number,
  ) {
    this.random = prng(seed);
    this.pos = posClient(app);
    this.admin = adminClient(app);
  }

  async setUp(): Promise<void> {
    for (const t of [...HISTORY_POS, WATER, SETTLE]) await this.app.terminals.register(t);
    for (let i = 0; i < this.cards; i++) await openCard(this.app, historyCardNo(i), serialOf(i), 50_000 + i * 100);
  }

  private next(t: NewTerminal): number {
    const n = (this.sequences.get(t.id) ?? 0) + 1;
    this.sequences.set(t.id, n);
    return n;
  }

  private card(): number {
    return Math.floor(this.random() * this.cards);
  }

  /** `count` operations, one after the other. */
  async run(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.one();
  }

  private async one(): Promise<void> {
    const roll = this.random();
    const c = this.card();
    if (roll < 0.45) {
      const t = HISTORY_POS[Math.floor(this.random() * HISTORY_POS.length)] as NewTerminal;
      const p = { t, sequence: this.next(t), card: c, amountFen: 1 + Math.floor(this.random() * 900) };
      const res = await call<object, { outcome: number }>(
        this.pos,
        'authorize',
        {
          terminalId: t.id,
          sequenceNumber: p.sequence,
          amountFen: p.amountFen,
          credential: { card: { cardSerial: serialOf(c) } },
          pin: '',
        },
        terminalMetadata(t),
      );
      if (res.outcome === 1) this.payments.push(p);
    } else if (roll < 0.52 && this.payments.length > 0) {
      const p = this.payments.splice(Math.floor(this.random() * this.payments.length), 1)[0]!;
      await call(
        this.pos,
        'reverse',
        {
          terminalId: p.t.id,
          originalSequenceNumber: p.sequence,
          amountFen: p.amountFen,
          credential: { card: { cardSerial: serialOf(p.card) } },
        },
        terminalMetadata(p.t),
      );
    } else if (roll < 0.58 && this.payments.length > 0) {
      const p = this.payments.splice(Math.floor(this.random() * this.payments.length), 1)[0]!;
      await call(
        this.pos,
        'refund',
        {
          terminalId: p.t.id,
          sequenceNumber: this.next(p.t),
          cardNumber: historyCardNo(p.card),
          originalTerminalId: p.t.id,
          originalSequenceNumber: p.sequence,
          amountFen: p.amountFen,
        },
        terminalMetadata(p.t),
      );
    } else if (roll < 0.7) {
      await call(
        this.admin,
        'manualRecharge',
        {
          cardNumber: historyCardNo(c),
          channel: this.random() < 0.5 ? RechargeChannel.RECHARGE_CHANNEL_WECHAT : RechargeChannel.RECHARGE_CHANNEL_ALIPAY,
          channelOrderId: `HXR${this.app.keys.prefix}${++this.order}`,
          amountFen: 100 + Math.floor(this.random() * 5000),
          reason: '充值',
        },
        operatorMetadata(),
      );
    } else if (roll < 0.8) {
      await call(
        this.pos,
        'settle',
        { terminalId: SETTLE.id, sequenceNumber: this.next(SETTLE), credential: { card: { cardSerial: serialOf(c) } } },
        terminalMetadata(SETTLE),
      );
    } else if (roll < 0.93) {
      await call(
        this.pos,
        'waterDebit',
        {
          terminalId: WATER.id,
          sequenceNumber: this.next(WATER),
          amountFen: 1 + Math.floor(this.random() * 200),
          credential: { card: { cardSerial: serialOf(c) } },
        },
        terminalMetadata(WATER),
      );
    } else {
      const amountFen = (this.random() < 0.5 ? -1 : 1) * (1 + Math.floor(this.random() * 500));
      await call(
        this.admin,
        'adjust',
        { cardNumber: historyCardNo(c), adjustmentId: `HXA${++this.order}`, amountFen, reason: '测试调账' },
        operatorMetadata(),
      ).catch((err: unknown) => expect((err as { code?: number }).code).toBe(9));
    }
  }
}
