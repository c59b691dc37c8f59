// The payment channels a switch talks to, built once by the wiring (app.ts takes them from main.ts,
// start.ts or a test): from the environment (ALIPAY_*, WECHATPAY_*) in production, or against the
// loopback simulators in development and tests.
import type { Logger } from '../log.js';
import { AlipayChannel } from './alipay/adapter.js';
import { loadAlipayConfig } from './alipay/config.js';
import { AlipaySimulator } from './alipay/simulator.js';
import type { ChannelName, PaymentChannel } from './channel.js';
import { ConfigError } from '../config.js';
import { WechatPayChannel } from './wechat/adapter.js';
import { loadWechatPayConfig } from './wechat/config.js';
import { WechatPaySimulator } from './wechat/simulator.js';

export type PaymentChannels = ReadonlyMap<ChannelName, PaymentChannel>;

export const NO_CHANNELS: PaymentChannels = new Map();

type Env = Readonly<Record<string, string | undefined>>;

/** Where the gateway takes each channel's payment notifications (its public base URL + this path). */
export function notifyPath(channel: ChannelName): string {
  return `/api/v1/channels/${channel}/notify`;
}

/** The channels configured in the environment (none when neither ALIPAY_APP_ID nor WECHATPAY_MCH_ID is set). */
export function channelsFromEnvironment(env: Env, log: Logger, now: () => number = Date.now): PaymentChannels {
  const problems: string[] = [];
  const channels = new Map<ChannelName, PaymentChannel>();
  try {
    const alipay = loadAlipayConfig(env);
    if (alipay !== undefined) channels.set('alipay', new AlipayChannel({ config: alipay, logger: log, now }));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  try {
    const wechat = loadWechatPayConfig(env);
    if (wechat !== undefined) channels.set('wechat', new WechatPayChannel({ ...wechat, log, now }));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return channels;
}

/** True when the environment names a real channel (then npm start runs no simulator). */
export function channelsConfigured(env: Env): boolean {
  return (env['ALIPAY_APP_ID'] ?? '').trim() !== '' || (env['WECHATPAY_MCH_ID'] ?? '').trim() !== '';
}

export interface ChannelSimulators {
  readonly alipay: AlipaySimulator;
  readonly wechat: WechatPaySimulator;
  /** Adapters pointed at the simulators, sending notifications to `notifyBaseUrl` + notifyPath(channel). */
  readonly channels: PaymentChannels;
  stop(): Promise<void>;
}

export interface SimulatorOptions {
  readonly log: Logger;
  /** The gateway's base URL as the channel would reach it, e.g. http://127.0.0.1:8080; '' = no notifications. */
  readonly notifyBaseUrl: string;
  /** Delay before each simulated answer (default: the simulators' own, a few ms; tests pass 0). */
  readonly latencyMs?: number;
  /** Each adapter call to a simulator gets at most this long (default 5000 ms; production's defaults: WeChat Pay 5 s, Alipay 10 s). */
  readonly adapterTimeoutMs?: number;
  readonly now?: () => number;
}

/** Both channel simulators on free loopback ports, and adapters configured for them (development, tests). */
export async function startChannelSimulators(options: SimulatorOptions): Promise<ChannelSimulators> {
  const now = options.now ?? Date.now;
  const latency = options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs };
  const alipay = new AlipaySimulator({ ...latency, now });
  const wechat = new WechatPaySimulator({ ...latency, now });
  await alipay.start();
  try {
    await wechat.start();
  } catch (err) {
    await alipay.stop();
    throw err;
  }
  const notify = (channel: ChannelName): string => (options.notifyBaseUrl === '' ? '' : `${options.notifyBaseUrl}${notifyPath(channel)}`);
  const wechatChannel = new WechatPayChannel({
    ...wechat.credentials(),
    apiBase: wechat.url,
    signType: 'HMAC-SHA256',
    notifyUrl: notify('wechat'),
    clientIp: '127.0.0.1',
    timeoutMs: options.adapterTimeoutMs ?? 5000,
    log: options.log,
    now,
  });
  const alipayConfig = alipay.adapterConfig({
    notifyUrl: notify('alipay'),
    ...(options.adapterTimeoutMs === undefined ? {} : { timeoutMs: options.adapterTimeoutMs }),
  });
  const alipayChannel = new AlipayChannel({ config: alipayConfig, logger: options.log, now });
  const channels = new Map<ChannelName, PaymentChannel>([
    ['alipay', alipayChannel],
    ['wechat', wechatChannel],
  ]);
  return {
    alipay,
    wechat,
    channels,
    async stop() {
      wechatChannel.close();
      alipayChannel.close();
      await Promise.all([alipay.stop(), wechat.stop()]);
    },
  };
}
