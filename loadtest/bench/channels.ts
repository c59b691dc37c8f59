// The payment channels of a bench run: both loopback simulators (switch/channels, Alipay and WeChat Pay)
// in the bench process, with a latency per answer like the real channels', and the switch child's
// adapters pointed at them (BENCH_CHANNELS, read by switch-child.ts). The simulators live beside the
// switch, not in it: a real channel's work (checking our signature, signing its answer) is not the
// switch's CPU, so it must not be counted as the switch's nor take its event loop. Set-up only here:
// payers bound to the bench's payer cards (channel-binding.lua, as bindChannelPayer does), codes minted
// ahead (a code pays once and lives 60 s), and the payers' balances for the ledger check.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AlipayConfig } from '../../switch/channels/alipay/config.js';
import { AlipayChannel } from '../../switch/channels/alipay/adapter.js';
import type { PayStep } from '../../switch/channels/alipay/simulator.js';
import type { ChannelName, PaymentChannel } from '../../switch/channels/channel.js';
import { startChannelSimulators, type ChannelSimulators, type PaymentChannels } from '../../switch/channels/index.js';
import { WechatPayChannel } from '../../switch/channels/wechat/adapter.js';
import type { CodeStep } from '../../switch/channels/wechat/simulator.js';
import { bindCardSide, claimPayer } from '../../switch/ledger/channel-payers.js';
import type { Keys } from '../../switch/ledger/keys.js';
import type { Scripts } from '../../switch/ledger/scripts.js';
import type { Logger } from '../../switch/log.js';
import type { CampusCard } from '../shared/campus-data.js';

/** What the switch child needs to build its adapters (JSON in the BENCH_CHANNELS variable). */
export interface BenchChannelsSpec {
  readonly wechat: {
    readonly apiBase: string;
    readonly appId: string;
    readonly mchId: string;
    readonly apiKey: string;
    readonly apiV3Key: string;
    readonly merchantPrivateKeyPem: string;
    readonly merchantSerial: string;
    readonly platformPublicKeyPem: string;
    readonly platformSerial: string;
  };
  readonly alipay: AlipayConfig;
}

/** Each payer's channel balance: far more than a run spends, so the channel never declines for money. */
const PAYER_BALANCE_FEN = 1_000_000_000;
/** A channel call answers within this (the adapters' timeout, as npm start's simulators use). */
const CHANNEL_TIMEOUT_MS = 5000;
/** One code in PENDING_EVERY is scripted "paying, then paid": the POS gets OUTCOME_PENDING. */
const PENDING_EVERY = 50;

/** The adapters of the switch child (switch-child.ts), from BENCH_CHANNELS. */
export function channelsFromSpec(spec: BenchChannelsSpec, log: Logger): PaymentChannels {
  const w = spec.wechat;
  const wechat = new WechatPayChannel({
    apiBase: w.apiBase,
    appId: w.appId,
    mchId: w.mchId,
    apiKey: w.apiKey,
    apiV3Key: w.apiV3Key,
    merchantPrivateKey: createPrivateKey(w.merchantPrivateKeyPem),
    merchantSerial: w.merchantSerial,
    merchantCertPem: undefined,
    merchantKeyPem: w.merchantPrivateKeyPem,
    platformPublicKey: createPublicKey(w.platformPublicKeyPem),
    platformSerial: w.platformSerial,
    signType: 'HMAC-SHA256',
    notifyUrl: '',
    clientIp: '127.0.0.1',
    timeoutMs: CHANNEL_TIMEOUT_MS,
    log,
  });
  const alipay = new AlipayChannel({ config: spec.alipay, logger: log });
  return new Map<ChannelName, PaymentChannel>([
    ['alipay', alipay],
    ['wechat', wechat],
  ]);
}

interface Payer {
  readonly cardNo: string;
  readonly wechat: string;
  readonly alipay: string;
}

export interface MintedThirdPartyCodes {
  readonly codes: string[];
  readonly wechat: number;
  readonly alipay: number;
  /** Codes scripted "paying, then paid" (the POS is answered OUTCOME_PENDING, the switch follows up). */
  readonly scriptedPending: number;
  readonly mintMs: number;
}

export class BenchChannels {
  private payers: Payer[] = [];
  /** The payer cards' campus balances right after binding (the water cards' small wallets were opened from them). */
  private balancesAtBindFen: number[] = [];
  private minted = 0;

  private constructor(
    private readonly sims: ChannelSimulators,
    readonly latencyMs: number,
  ) {}

  static async start(log: Logger, latencyMs: number): Promise<BenchChannels> {
    // No notifications: the switch learns a payment's end from its own answer or its follow-up query.
    return new BenchChannels(await startChannelSimulators({ log, notifyBaseUrl: '', latencyMs }), latencyMs);
  }

  /** Both simulators answer after `latencyMs` from now on (tap+thirdparty's phase with codes answered at once). */
  setLatencyMs(latencyMs: number): void {
    this.sims.alipay.setLatencyMs(latencyMs);
    this.sims.wechat.setLatencyMs(latencyMs);
  }

  spec(): BenchChannelsSpec {
    const k = this.sims.wechat.keys;
    return {
      wechat: {
        apiBase: this.sims.wechat.url,
        appId: k.appId,
        mchId: k.mchId,
        apiKey: k.apiKey,
        apiV3Key: k.apiV3Key,
        merchantPrivateKeyPem: k.merchantPrivateKeyPem,
        merchantSerial: k.merchantSerial,
        platformPublicKeyPem: k.platformPublicKeyPem,
        platformSerial: k.platformSerial,
      },
      alipay: this.sims.alipay.adapterConfig({ timeoutMs: CHANNEL_TIMEOUT_MS }),
    };
  }

  /** One WeChat and one Alipay payer per card, bound to it in the ledger (both sides, as bindChannelPayer leaves them). */
  async bindPayers(
    access: { readonly redis: Redis; readonly keys: Keys; readonly scripts: Scripts },
    cards: readonly CampusCard[],
  ): Promise<void> {
    this.balancesAtBindFen = await cardBalancesFen(
      access.redis,
      access.keys,
      cards.map((c) => c.cardNo),
    );
    const payers: Payer[] = [];
    for (const [i, card] of cards.entries()) {
      const wechat = `oWX-bench-${String(i).padStart(6, '0')}`;
      this.sims.wechat.setBalance(wechat, PAYER_BALANCE_FEN);
      const alipay = this.sims.alipay.newPayer({ balanceFen: PAYER_BALANCE_FEN });
      for (const [channel, payerId] of [
        ['wechat', wechat],
        ['alipay', alipay],
      ] as const) {
        const claimed = await claimPayer(access, channel, payerId, card.cardNo, '');
        // The bench's payer cards have no e-card holder: no holder's binding to check.
        const bound = await bindCardSide(access, card.cardNo, channel, payerId, undefined);
        if (claimed === 'held_by_another' || bound !== 'done')
          throw new Error(`binding ${channel} payer ${payerId} to card ${card.cardNo}: ${claimed} / ${bound}`);
      }
      payers.push({ cardNo: card.cardNo, wechat, alipay });
    }
    this.payers = payers;
  }

  /** The payer cards' balances when they were bound, in the order of payerCards. */
  get payerCardBalancesAtBindFen(): readonly number[] {
    return this.balancesAtBindFen;
  }

  get payerCards(): readonly string[] {
    return this.payers.map((p) => p.cardNo);
  }

  /** `count` fresh codes, WeChat and Alipay in turn (or one channel's only), over the payers in turn; one in 50 scripted pending. */
  mint(count: number, channels: 'both' | 'alipay' | 'wechat' = 'both'): MintedThirdPartyCodes {
    if (this.payers.length === 0) throw new Error('no channel payers bound: bindPayers first');
    const startedMs = Date.now();
    const codes: string[] = [];
    let scriptedPending = 0,
      wechat = 0;
    for (let i = 0; i < count; i++) {
      const n = this.minted++;
      const payer = this.payers[Math.floor(n / 2) % this.payers.length] as Payer;
      const pending = n % PENDING_EVERY === PENDING_EVERY - 1;
      if (channels === 'wechat' || (channels === 'both' && n % 2 === 0)) {
        wechat++;
        const code = this.sims.wechat.newCode(payer.wechat);
        if (pending) this.sims.wechat.script(code, ['paying', 'paid'] satisfies CodeStep[]);
        codes.push(code);
      } else {
        const code = this.sims.alipay.newCode(payer.alipay);
        if (pending) this.sims.alipay.script(code, ['paying', 'paid'] satisfies PayStep[]);
        codes.push(code);
      }
      if (pending) scriptedPending++;
    }
    return { codes, wechat, alipay: count - wechat, scriptedPending, mintMs: Date.now() - startedMs };
  }

  /** What the payers paid through the channels, in fen (their opening balances less what is left). */
  payersDebitedFen(): number {
    let fen = 0;
    for (const p of this.payers) fen += 2 * PAYER_BALANCE_FEN - this.sims.wechat.balanceOf(p.wechat) - this.sims.alipay.balanceOf(p.alipay);
    return fen;
  }

  stop(): Promise<void> {
    return this.sims.stop();
  }
}

/** The cards' campus balances (a payer card's must not move: a code payment never touches it, nothing else pays with it). */
export async function cardBalancesFen(redis: Redis, keys: Keys, cardNos: readonly string[]): Promise<number[]> {
  const pipeline = redis.pipeline();
  for (const cardNo of cardNos) pipeline.hget(keys.account(cardNo), 'bal');
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([err, value]) => (err === null ? Number(value) : Number.NaN));
}
