// The kiosk's gRPC client to cardswitch.v1.KioskService: the only place that holds the terminal
// credential (it goes into each call's metadata, never to the renderer or a log). grpc-js reconnects
// by itself after the switch restarts; the backoff is capped at a few seconds so a restarted switch is
// found again while the next holder is still at the screen.
import { credentials, Metadata, status as Status, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import {
  KioskServiceClient,
  type CancelLossRequest,
  type CancelRechargeOrderRequest,
  type CancelRechargeOrderResponse,
  type CancelLossResponse,
  type ChangePasswordRequest,
  type ChangePasswordResponse,
  type IdentifyCardRequest,
  type IdentifyCardResponse,
  type PayUtilityFeeRequest,
  type PayUtilityFeeResponse,
  type RechargeOrderStateRequest,
  type RechargeOrderStateResponse,
  type RechargeRequest,
  type RechargeResponse,
  type ReportLossRequest,
  type ReportLossResponse,
  type StatementRequest,
  type StatementResponse,
} from '../../proto/gen/cardswitch/v1/kiosk.js';
import type { ErrorCode } from '../shared/api.js';

export interface TerminalCredential {
  readonly terminalId: string;
  readonly secret: string;
}

/** What main asks the switch; one promise per KioskService method. */
export interface KioskSwitch {
  identifyCard(req: IdentifyCardRequest): Promise<IdentifyCardResponse>;
  recharge(req: RechargeRequest): Promise<RechargeResponse>;
  rechargeOrderState(req: RechargeOrderStateRequest): Promise<RechargeOrderStateResponse>;
  cancelRechargeOrder(req: CancelRechargeOrderRequest): Promise<CancelRechargeOrderResponse>;
  reportLoss(req: ReportLossRequest): Promise<ReportLossResponse>;
  cancelLoss(req: CancelLossRequest): Promise<CancelLossResponse>;
  changePassword(req: ChangePasswordRequest): Promise<ChangePasswordResponse>;
  statement(req: StatementRequest): Promise<StatementResponse>;
  payUtilityFee(req: PayUtilityFeeRequest): Promise<PayUtilityFeeResponse>;
  close(): void;
}

/**
 * CancelRechargeOrder's deadline. The switch gives the channel at most CHANNEL_CALL_TIMEOUT_MS (10 s,
 * switch/domain/recharge-orders.ts) for the close and the query after a refused close together, then
 * writes the outcome in the ledger (milliseconds). The kiosk waits longer than that, so it hears what the
 * switch decided (closed, paid, or still payable) rather than giving up while the switch still closes the
 * order: a kiosk that gave up would have to say "perhaps still payable" of an order the channel closed.
 * Bounding the switch below the kiosk's usual 8 s instead would cut off closes that a slow channel still
 * completes, for the same wrong notice. 5 s of margin covers the switch's own answer-before-the-deadline
 * reserve (switch/grpc/deadline.ts, at most 0.5 s), the ledger and the network. test/kiosk-recharge-leave
 * checks it against the switch's constant with a channel that answers in 9 s.
 */
export const CANCEL_RECHARGE_DEADLINE_MS = 15_000;

/**
 * The same for the other calls the switch answers only after a channel did: Recharge (the channel makes
 * the order: one call, up to ALIPAY_TIMEOUT_MS, 10 s by default, within CHANNEL_CALL_TIMEOUT_MS) and
 * RechargeOrderState (it may ask the channel about an older order). With the usual 8 s, Alipay making an
 * order in 9 s left an order whose id the kiosk never heard: no QR was shown, yet the order held its
 * amount against the card's daily maximum until it expired, and nothing could close it
 * (test/kiosk-recharge-leave, "a slow channel and Recharge's deadline").
 */
export const CHANNEL_CALL_DEADLINE_MS = CANCEL_RECHARGE_DEADLINE_MS;

/**
 * TLS to the switch (a production switch serves gRPC over TLS only: root README, *TLS*). `ca`: the PEM
 * CA(s) to trust instead of the system's; `cert` and `key`: this kiosk's client certificate, for a switch
 * with GRPC_TLS_CLIENT_CA_FILE (mTLS).
 */
export interface SwitchTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export interface SwitchClientOptions {
  /** host:port of the switch's gRPC listener. */
  readonly address: string;
  readonly credential: TerminalCredential;
  /** TLS (the terminal secret, card passwords and serials cross the lobby's network); undefined: plaintext. */
  readonly tls?: SwitchTls | undefined;
  /**
   * Each call gets at most this long (default 8 s; the calls that wait on a channel, Recharge,
   * RechargeOrderState and CancelRechargeOrder, at least CHANNEL_CALL_DEADLINE_MS):
   * then the holder sees "switch unreachable".
   */
  readonly deadlineMs?: number;
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;

export function createSwitchClient(options: SwitchClientOptions): KioskSwitch {
  const tls = options.tls;
  const channel =
    tls === undefined ? credentials.createInsecure() : credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
  const client = new KioskServiceClient(options.address, channel, {
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.max_reconnect_backoff_ms': 2000,
    'grpc.keepalive_time_ms': 30_000,
  });
  const deadlineMs = options.deadlineMs ?? 8000;
  const metadata = (): Metadata => {
    const md = new Metadata();
    md.set('terminal-id', options.credential.terminalId);
    md.set('terminal-secret', options.credential.secret);
    return md;
  };
  function unary<Req, Res>(name: string, callDeadlineMs = deadlineMs): (req: Req) => Promise<Res> {
    const method = (client as unknown as Record<string, Unary<Req, Res>>)[name];
    if (method === undefined) throw new Error(`KioskService has no method ${name}`);
    return (req) =>
      new Promise((resolve, reject) => {
        method.call(client, req, metadata(), { deadline: Date.now() + callDeadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
      });
  }
  return {
    identifyCard: unary<IdentifyCardRequest, IdentifyCardResponse>('identifyCard'),
    recharge: unary<RechargeRequest, RechargeResponse>('recharge', Math.max(deadlineMs, CHANNEL_CALL_DEADLINE_MS)),
    rechargeOrderState: unary<RechargeOrderStateRequest, RechargeOrderStateResponse>(
      'rechargeOrderState',
      Math.max(deadlineMs, CHANNEL_CALL_DEADLINE_MS),
    ),
    cancelRechargeOrder: unary<CancelRechargeOrderRequest, CancelRechargeOrderResponse>(
      'cancelRechargeOrder',
      Math.max(deadlineMs, CANCEL_RECHARGE_DEADLINE_MS),
    ),
    reportLoss: unary<ReportLossRequest, ReportLossResponse>('reportLoss'),
    cancelLoss: unary<CancelLossRequest, CancelLossResponse>('cancelLoss'),
    changePassword: unary<ChangePasswordRequest, ChangePasswordResponse>('changePassword'),
    statement: unary<StatementRequest, StatementResponse>('statement'),
    payUtilityFee: unary<PayUtilityFeeRequest, PayUtilityFeeResponse>('payUtilityFee'),
    close: () => client.close(),
  };
}

export interface MappedFailure {
  readonly error: ErrorCode;
  readonly attemptsLeft?: number;
  readonly leftTodayFen?: number;
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/**
 * A failed KioskService call as the screen the holder sees. The switch's statuses and messages are
 * documented in kiosk.proto and switch/grpc/errors.ts. Refusals that share a status are told apart by the
 * switch's stable reason (trailing metadata `error-reason`, switch/grpc/errors.ts ERROR_REASON_TRAILER),
 * or, for failures that carry none, by the message.
 */
export function mapSwitchError(err: unknown): MappedFailure {
  if (!isServiceError(err)) return { error: 'failed' };
  const details = err.details ?? '';
  const attempts = err.metadata?.get('password-attempts-left')[0];
  const reason = String(err.metadata?.get('error-reason')[0] ?? '');
  switch (err.code) {
    case Status.UNAVAILABLE:
      if (/did not answer the recharge order/.test(details)) return { error: 'channel_unavailable' };
      if (/journal archive \(PostgreSQL\) is not answering/.test(details)) return { error: 'history_unavailable' };
      return { error: 'unreachable' };
    case Status.DEADLINE_EXCEEDED:
    case Status.CANCELLED:
      return { error: 'unreachable' };
    case Status.UNAUTHENTICATED:
      return { error: 'failed' };
    case Status.NOT_FOUND:
      if (/student\/staff number/.test(details)) return { error: 'person_unknown' };
      return { error: 'card_unknown' };
    case Status.PERMISSION_DENIED:
      if (attempts !== undefined) return { error: 'wrong_password', attemptsLeft: Number(attempts) };
      return { error: 'failed' };
    case Status.RESOURCE_EXHAUSTED:
      return exhausted(reason, details, attempts !== undefined);
    case Status.FAILED_PRECONDITION: {
      if (reason === 'CARD_FROZEN') return { error: 'card_frozen' };
      if (/replaced/.test(details)) return { error: 'card_replaced' };
      if (/cancelled/.test(details)) return { error: 'card_cancelled' };
      const left = /\((\d+) fen\) more today/.exec(details);
      if (left !== null) return { error: 'over_limit', leftTodayFen: Number(left[1]) };
      if (/no (wechat|alipay) channel/.test(details)) return { error: 'channel_unavailable' };
      return { error: 'failed' };
    }
    case Status.INVALID_ARGUMENT:
      if (/new_password must differ/.test(details)) return { error: 'password_same' };
      if (/new_password must not be the initial/.test(details)) return { error: 'password_initial' };
      if (/password must be exactly 6 digits/.test(details)) return { error: 'password_format' };
      if (/amount/i.test(details)) return { error: 'over_limit' };
      if (/person_number/.test(details)) return { error: 'person_unknown' };
      return { error: 'bad_request' };
    case Status.ALREADY_EXISTS:
      if (reason === 'PASSWORD_CHANGED_MEANWHILE') return { error: 'password_changed' };
      // A finished recharge order, or a recharge request id the switch has seen with another order.
      if (reason === 'ORDER_FINISHED' || /recharge order/.test(details)) return { error: 'order_finished' };
      return { error: 'failed' };
    default:
      return { error: 'failed' };
  }
}

/** RESOURCE_EXHAUSTED: a locked password, a limit of this kiosk or of the card's checks in flight, or too many orders. */
function exhausted(reason: string, details: string, hasAttemptsLeft: boolean): MappedFailure {
  if (hasAttemptsLeft || reason === 'PASSWORD_LOCKED') return { error: 'password_locked' };
  if (reason === 'TERMINAL_PASSWORD_LIMIT') return { error: 'terminal_password_limit' };
  // The card's or the kiosk's checks in flight, or the switch's password workers full (no reason: not a refusal of ours).
  if (reason === 'PASSWORD_BUSY' || reason === 'TERMINAL_PASSWORD_BUSY' || /too many password checks waiting/.test(details)) {
    return { error: 'password_busy' };
  }
  if (/unpaid recharge orders/.test(details)) return { error: 'too_many_orders' };
  return { error: 'unreachable' };
}
