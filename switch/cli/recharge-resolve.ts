// `cardswitch recharge-resolve --channel wechat|alipay --order <id> [--close] [--operator NAME] [--json]`:
// an operator resolves one recharge order that needs one (recharge-attention lists them) or is still
// pending. The channel is asked now, as the switch asks it (ALIPAY_* / WECHATPAY_*, channelsFromEnvironment,
// as reconcile does), and the order is settled by the answer through the domain, exactly as the
// settlement loop settles it (domain/recharge-orders.ts resolveRechargeOrder): paid -> credited once,
// closed / expired -> closed (its hold on the day's maximum released), no final answer -> nothing changed.
// Each resolution is written to the operator log as done by "cli:NAME".
// Exit codes: 0 credited or closed now, 1 no final answer (nothing changed) or paid with another amount
// (closed, nothing credited: a refund by hand), 2 usage, configuration, environment, or an order refused
// (unknown, of the other channel, or not open any more: its state is said).
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { channelsFromEnvironment } from '../channels/index.js';
import type { ChannelName } from '../channels/channel.js';
import { resolveRechargeOrder, type ResolvedOrder } from '../domain/recharge-orders.js';
import { DomainError } from '../errors.js';
import { MoneyLedger } from '../ledger/money.js';
import { Scripts } from '../ledger/scripts.js';
import { formatCampusTime } from '../format.js';
import { formatYuan } from '../money.js';
import { ReplicaWait } from '../redis/replica-wait.js';
import { cliConfig, cliOperator, CliUsageError, ledgerKeysOf, runCli, withLedgerConnection, type Env } from './ledger-session.js';

export const RECHARGE_RESOLVE_USAGE = `usage: cardswitch recharge-resolve --channel wechat|alipay --order <id> [--close] [--operator NAME] [--json]

Resolves one recharge order that needs an operator (npm run cli -- recharge-attention lists them) or is
still pending. Without --close the channel's order query is asked now, and the order is settled by its
answer as the settlement loop would: paid -> credited once to its card; closed, or unknown to the
channel after the order expired -> closed (its amount no longer held against the card's daily recharge
maximum); no final answer -> nothing is changed (check the order in the channel's merchant portal, try
again later, or close it with --close).
With --close the channel is first asked to close the order, so it can no longer be paid: closed -> closed
here too; paid before the close got there -> credited once.
An order already credited, closed or expired is refused with its state, so running it again changes
nothing. Each resolution is written to the operator log (stream <KEY_PREFIX>:oplog, action
recharge-resolve) as done by "cli:NAME".

  --channel   the order's channel: wechat or alipay (configured by WECHATPAY_* / ALIPAY_*, as for the switch)
  --order     the order id (out_trade_no), as recharge-attention lists it
  --close     close the order at the channel first
  --operator  who resolves it, for the operator log (default: the login name)
  --json      print the outcome as one JSON object on stdout

environment: REDIS_URL (required), KEY_PREFIX, and the channel's WECHATPAY_* or ALIPAY_*; LOG_LEVEL
  (default warn; logs go to stderr); LEDGER_DURABILITY=replica / LEDGER_WAIT_TIMEOUT_MS as for the switch
  (a change no replica confirmed in time stops the command: run it again)
exit codes: 0 credited or closed, 1 no final answer (nothing changed) or paid with another amount (closed,
  refund it by hand), 2 usage, configuration or environment error, or the order refused (unknown id,
  the other channel's order, already credited or closed)`;

const CHANNEL_ZH: Readonly<Record<ChannelName, string>> = { alipay: '支付宝', wechat: '微信支付' };
const CHANNEL_EN: Readonly<Record<ChannelName, string>> = { alipay: 'Alipay', wechat: 'WeChat Pay' };
const PORTAL: Readonly<Record<ChannelName, { readonly en: string; readonly zh: string }>> = {
  alipay: { en: 'the Alipay merchant portal (b.alipay.com)', zh: '支付宝商家平台（b.alipay.com）' },
  wechat: { en: 'the WeChat Pay merchant portal (pay.weixin.qq.com)', zh: '微信支付商户平台（pay.weixin.qq.com）' },
};

interface Args {
  readonly channel: ChannelName;
  readonly orderId: string;
  readonly close: boolean;
  readonly operator: string;
  readonly json: boolean;
}

function parse(argv: readonly string[]): Args | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      channel: { type: 'string' },
      order: { type: 'string' },
      close: { type: 'boolean' },
      operator: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';
  const channel = values.channel;
  if (channel !== 'wechat' && channel !== 'alipay')
    throw new CliUsageError(
      channel === undefined ? 'recharge-resolve needs --channel wechat or --channel alipay' : '--channel must be wechat or alipay',
    );
  const orderId = (values.order ?? '').trim();
  if (orderId === '') throw new CliUsageError('recharge-resolve needs --order <id> (the order id recharge-attention lists)');
  return { channel, orderId, close: values.close === true, operator: cliOperator(values.operator), json: values.json === true };
}

/** What the operator reads: the outcome in English, then in Chinese; the exit code. */
function report(r: ResolvedOrder): { readonly lines: readonly string[]; readonly code: number } {
  const amount = formatYuan(r.amountFen);
  const what = `${r.channel} recharge order ${r.orderId} (${amount} yuan, card ${r.cardNo})`;
  const whatZh = `${CHANNEL_ZH[r.channel]}充值订单 ${r.orderId}（${amount} 元，卡号 ${r.cardNo}）`;
  const portal = PORTAL[r.channel];
  switch (r.outcome) {
    case 'credited': {
      const after = r.balanceAfterFen === undefined ? '' : `; balance after it ${formatYuan(r.balanceAfterFen)} yuan`;
      const afterZh = r.balanceAfterFen === undefined ? '' : `，入账后余额 ${formatYuan(r.balanceAfterFen)} 元`;
      return {
        code: 0,
        lines: [
          `credited ${amount} yuan to card ${r.cardNo}: ${r.channel} recharge order ${r.orderId} was paid (${r.answer}); transaction ${r.transactionId}${after}`,
          `已入账 ${amount} 元到卡号 ${r.cardNo}：${CHANNEL_ZH[r.channel]}充值订单 ${r.orderId} 已支付${afterZh}`,
        ],
      };
    }
    case 'closed':
      return {
        code: 0,
        lines: [
          `closed ${what}: the channel answered ${r.answer}; nothing was credited and its amount is no longer held against the card's daily recharge maximum`,
          `已关闭${whatZh}：渠道答复未支付/已关闭，未入账；该金额不再占用当日充值额度`,
        ],
      };
    case 'refunded':
      return {
        code: 0,
        lines: [
          `${what} was paid, but the card can take no recharge (cancelled): the ${amount} yuan were refunded to the payer at the channel and the order is closed`,
          `${whatZh}已支付，但该卡不可充值（已注销）：${amount} 元已在渠道原路退回付款人，订单已关闭`,
        ],
      };
    case 'amount_mismatch':
      return {
        code: 1,
        lines: [
          `${what} was paid with another amount (${r.answer}): closed, nothing credited; refund that payment in ${portal.en} and note it for reconciliation`,
          `${whatZh}的支付金额与订单不符：订单已关闭，未入账；请在${portal.zh}退回该笔付款，并在对账时备注`,
        ],
      };
    case 'unknown': {
      const open = Date.now() < r.expiresAtMs;
      const still = open ? ` It can still be paid until ${formatCampusTime(r.expiresAtMs)}.` : '';
      const stillZh = open ? `订单在 ${formatCampusTime(r.expiresAtMs)} 前仍可支付。` : '';
      return {
        code: 1,
        lines: [
          `unknown: ${CHANNEL_EN[r.channel]} gave no final answer about ${what} (${r.answer}); nothing was changed.${still} ` +
            `Check the order in ${portal.en}, try again later, or close it with --close.`,
          `结果未知：${CHANNEL_ZH[r.channel]}未给出${whatZh}的最终结果；未做任何更改。${stillZh}` +
            `请在${portal.zh}核对该订单，稍后重试，或使用 --close 关闭订单。`,
        ],
      };
    }
  }
}

async function resolve(argv: readonly string[], env: Env): Promise<number> {
  const args = parse(argv);
  if (args === 'help') {
    console.log(RECHARGE_RESOLVE_USAGE);
    return 0;
  }
  const config = cliConfig(env, 'recharge-resolve');
  // Logs on stderr, so the outcome (and --json) alone is on stdout.
  const log = pino(
    { name: 'cardswitch-cli', level: (env['LOG_LEVEL'] ?? '') === '' ? 'warn' : config.logLevel },
    pino.destination({ dest: 2, sync: true }),
  );
  const channels = channelsFromEnvironment(env, log);
  try {
    if (!channels.has(args.channel)) {
      const variable = args.channel === 'alipay' ? 'ALIPAY_APP_ID' : 'WECHATPAY_MCH_ID';
      throw new CliUsageError(
        `the ${args.channel} channel is not configured (${variable} and the rest of its settings, as the switch has them): set them to ask it; nothing was changed`,
      );
    }
    return await withLedgerConnection(config, 'recharge-resolve', async (redis) => {
      const keys = await ledgerKeysOf(redis, config.keyPrefix);
      // The durable mode, as the switch runs it: a credit or close is reported only once a replica holds it
      // (ReplicaWaitError otherwise: "stopped", run it again), so a failover cannot take back what it said.
      const durable = config.ledgerDurability === 'replica' ? new ReplicaWait(redis, undefined, config.ledgerWaitTimeoutMs) : undefined;
      const scripts = await Scripts.load(redis, undefined, durable);
      const now = (): number => Date.now();
      const money = new MoneyLedger(keys, scripts, config.requestTtlSec, now);
      let resolved: ResolvedOrder;
      try {
        resolved = await resolveRechargeOrder(
          { keys, scripts, money, channels, log, now },
          { channel: args.channel, orderId: args.orderId, close: args.close, operator: args.operator },
        );
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        console.error(`error: ${err.message}`);
        if (err.zh !== undefined) console.error(`错误：${err.zh}`);
        return 2;
      }
      const { lines, code } = report(resolved);
      if (args.json) console.log(JSON.stringify(resolved));
      else for (const line of lines) console.log(line);
      return code;
    });
  } finally {
    for (const channel of channels.values()) (channel as { close?: () => void }).close?.();
  }
}

/**
 * Runs `recharge-resolve` with its arguments (without the word "recharge-resolve") and returns the exit
 * code. Expected problems (usage, configuration, Redis unreachable, a refused order) are printed, not thrown.
 */
export function runRechargeResolveCommand(argv: readonly string[], env: Env = process.env): Promise<number> {
  // Redis going away mid-way: the order may or may not be settled; recharge-attention and this command again tell.
  return runCli(RECHARGE_RESOLVE_USAGE, () => resolve(argv, env), {
    stoppedPrefix: 'recharge-resolve stopped before it could finish (run it again: it settles an order once): ',
  });
}
