// Maps domain refusals to HTTP for the gateway: a status, a JSON body the phone page can show, and the
// headers the status calls for. The same classes map to gRPC statuses in grpc/errors.ts.
//
// Body: { error: { code, message, messageEn, field?, attemptsLeft? } }. `code` is the refusal's machine
// reason (CARD_NOT_SYNCED ...) or a default per class; `message` (zh-CN, what the cardholder reads) is the
// refusal's own text or a generic sentence per class; `messageEn` is the refusal's English message.
// Anything unexpected is a 500 with a generic text: nothing internal reaches the caller.
import {
  AlreadyExistsError,
  CancelledError,
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PasswordLockedError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
  WrongPasswordError,
} from '../errors.js';
import { IdempotencyConflictError, ReversalMismatchError } from '../ledger/ledger.js';
import { isRedisUnavailable } from '../redis/unavailable.js';
import { PasswordPoolBusyError } from '../workers/password-pool.js';

export interface ErrorBody {
  readonly code: string;
  /** zh-CN, for the cardholder. */
  readonly message: string;
  readonly messageEn: string;
  /** The request field the refusal is about; the page shows the message next to it. */
  readonly field?: string;
  /** Wrong or locked card password: tries left today. */
  readonly attemptsLeft?: number;
}

export interface HttpError {
  readonly status: number;
  readonly body: { readonly error: ErrorBody };
  readonly headers: Readonly<Record<string, string>>;
  /** Our fault, not the caller's: logged at error level with the error. */
  readonly serious: boolean;
  /**
   * The ledger did not answer (a Redis outage or stall): logged at warn, one line per request and no
   * stack, since during an outage every request fails the same way and the breaker logs the outage.
   */
  readonly ledgerUnavailable: boolean;
}

/** Seconds a client should wait before retrying: a full password queue drains in about 100 ms. */
const RETRY_AFTER_POOL_BUSY_SEC = '1';
const RETRY_AFTER_EXHAUSTED_SEC = '5';
const RETRY_AFTER_UNAVAILABLE_SEC = '2';

export const GENERIC_ZH = {
  INVALID_ARGUMENT: '请求内容有误：请检查填写的内容后重试',
  UNAUTHENTICATED: '登录已失效，请重新登录',
  PERMISSION_DENIED: '没有权限进行此操作',
  NOT_FOUND: '未找到相关信息',
  ALREADY_EXISTS: '该记录已存在',
  IDEMPOTENCY_CONFLICT: '该请求编号已用于另一笔不同的请求，请刷新页面后重试',
  FAILED_PRECONDITION: '当前状态下不能进行此操作',
  RESOURCE_EXHAUSTED: '请求过于频繁，请稍后再试',
  UNIMPLEMENTED: '该功能暂未开放',
  UNAVAILABLE: '系统繁忙，请稍后再试',
  INTERNAL: '系统出现问题，请稍后再试',
} as const;

/** An error answer built by the gateway itself (404, 413 ...) or by the mapping below. */
export function httpError(
  status: number,
  code: string,
  message: string,
  messageEn: string,
  extra: {
    field?: string | undefined;
    attemptsLeft?: number;
    headers?: Readonly<Record<string, string>>;
    serious?: boolean;
    ledgerUnavailable?: boolean;
  } = {},
): HttpError {
  const error: ErrorBody = {
    code,
    message,
    messageEn,
    ...(extra.field !== undefined ? { field: extra.field } : {}),
    ...(extra.attemptsLeft !== undefined ? { attemptsLeft: extra.attemptsLeft } : {}),
  };
  return {
    status,
    body: { error },
    headers: extra.headers ?? {},
    serious: extra.serious ?? false,
    ledgerUnavailable: extra.ledgerUnavailable ?? false,
  };
}

function refusal(
  err: DomainError,
  status: number,
  defaultCode: keyof typeof GENERIC_ZH,
  extra: { attemptsLeft?: number; headers?: Readonly<Record<string, string>>; serious?: boolean } = {},
): HttpError {
  return httpError(status, err.reason ?? defaultCode, err.zh ?? GENERIC_ZH[defaultCode], err.message, { field: err.field, ...extra });
}

/**
 * The HTTP answer for a failure, or undefined for CancelledError: the caller went away and nothing is
 * answered (the server closes the connection if it is somehow still open).
 */
export function httpErrorOf(err: unknown): HttpError | undefined {
  if (err instanceof CancelledError) return undefined;
  if (err instanceof DomainError) return domainRefusal(err);
  if (err instanceof RangeError) {
    // Validation helpers shared with gRPC throw RangeError for out-of-range input (gRPC: INVALID_ARGUMENT).
    return httpError(400, 'INVALID_ARGUMENT', GENERIC_ZH.INVALID_ARGUMENT, err.message);
  }
  if (err instanceof IdempotencyConflictError) return httpError(409, 'IDEMPOTENCY_CONFLICT', GENERIC_ZH.IDEMPOTENCY_CONFLICT, err.message);
  if (err instanceof ReversalMismatchError) return httpError(409, 'REVERSAL_MISMATCH', GENERIC_ZH.FAILED_PRECONDITION, err.message);
  if (err instanceof PasswordPoolBusyError) {
    return httpError(429, 'PASSWORD_CHECK_BUSY', GENERIC_ZH.UNAVAILABLE, 'too many password checks waiting; retry in a moment', {
      headers: { 'retry-after': RETRY_AFTER_POOL_BUSY_SEC },
      serious: true,
    });
  }
  if (isRedisUnavailable(err)) {
    return httpError(
      503,
      'UNAVAILABLE',
      GENERIC_ZH.UNAVAILABLE,
      'the ledger did not answer, so the outcome is unknown; retry the same request to learn it',
      {
        headers: { 'retry-after': RETRY_AFTER_UNAVAILABLE_SEC },
        ledgerUnavailable: true,
      },
    );
  }
  // LedgerInvariantError (the process is about to stop loudly) and anything unexpected.
  return internalError();
}

function domainRefusal(err: DomainError): HttpError {
  if (err instanceof InvalidArgumentError) return refusal(err, 400, 'INVALID_ARGUMENT');
  if (err instanceof UnauthenticatedError) return refusal(err, 401, 'UNAUTHENTICATED', { headers: { 'www-authenticate': 'Bearer' } });
  if (err instanceof WrongPasswordError) return refusal(err, 403, 'PERMISSION_DENIED', { attemptsLeft: err.attemptsLeft });
  if (err instanceof PermissionDeniedError) return refusal(err, 403, 'PERMISSION_DENIED');
  if (err instanceof NotFoundError) return refusal(err, 404, 'NOT_FOUND');
  if (err instanceof AlreadyExistsError) return refusal(err, 409, 'ALREADY_EXISTS');
  if (err instanceof FailedPreconditionError) return refusal(err, 409, 'FAILED_PRECONDITION');
  if (err instanceof PasswordLockedError) return refusal(err, 429, 'RESOURCE_EXHAUSTED', { attemptsLeft: 0 });
  if (err instanceof ResourceExhaustedError) {
    return refusal(err, 429, 'RESOURCE_EXHAUSTED', { headers: { 'retry-after': RETRY_AFTER_EXHAUSTED_SEC } });
  }
  if (err instanceof UnimplementedError) return refusal(err, 501, 'UNIMPLEMENTED');
  if (err instanceof UnavailableError) {
    return refusal(err, 503, 'UNAVAILABLE', { headers: { 'retry-after': RETRY_AFTER_UNAVAILABLE_SEC }, serious: true });
  }
  // A DomainError of a class added later and not mapped here: a bug of ours, not the caller's.
  return internalError();
}

/** What a failure says, for a log line without a stack. */
export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export function internalError(): HttpError {
  return httpError(500, 'INTERNAL', GENERIC_ZH.INTERNAL, 'internal error; please try again later', { serious: true });
}
