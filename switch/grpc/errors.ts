// Maps domain failures (switch/errors.ts) to gRPC statuses with a message a person can act on.
import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
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
import { PasswordPoolBusyError } from '../workers/password-pool.js';
import { isRedisUnavailable } from '../redis/unavailable.js';
import { LedgerDownError } from '../redis/breaker.js';
import { IdempotencyConflictError, LedgerInvariantError, ReversalMismatchError } from '../ledger/ledger.js';

export function statusError(code: Status, details: string): Partial<ServiceError> {
  return { code, details, metadata: new Metadata() };
}

export interface MappedError {
  readonly code: Status;
  readonly details: string;
  /** Trailing metadata to send with the status. */
  readonly trailers?: Readonly<Record<string, string>>;
  /** Worth an error-level log line (our fault or the ledger's), not the caller's. */
  readonly serious: boolean;
}

/**
 * Trailing metadata naming a refusal's stable machine reason (switch/errors.ts RefusalDetails.reason, e.g.
 * PASSWORD_BUSY, CARD_FROZEN), so a client tells apart refusals that share a status without reading the
 * English message.
 */
export const ERROR_REASON_TRAILER = 'error-reason';

export function mapError(err: unknown): MappedError {
  const mapped = statusOf(err);
  if (!(err instanceof DomainError) || err.reason === undefined) return mapped;
  return { ...mapped, trailers: { ...mapped.trailers, [ERROR_REASON_TRAILER]: err.reason } };
}

/** UNAVAILABLE when a ledger request may have been applied: the POS retries with the same sequence number. */
const OUTCOME_UNKNOWN =
  'the ledger did not answer, so the outcome is unknown; retry with the same sequence number to learn it (a retry never charges twice)';
const LEDGER_DOWN =
  'the ledger is not answering at the moment; retry with the same sequence number in a moment (a retry never charges twice)';

function statusOf(err: unknown): MappedError {
  if (err instanceof InvalidArgumentError || err instanceof RangeError)
    return { code: Status.INVALID_ARGUMENT, details: err.message, serious: false };
  if (err instanceof IdempotencyConflictError || err instanceof AlreadyExistsError)
    return { code: Status.ALREADY_EXISTS, details: err.message, serious: false };
  if (err instanceof UnauthenticatedError) return { code: Status.UNAUTHENTICATED, details: err.message, serious: false };
  if (err instanceof UnavailableError) return { code: Status.UNAVAILABLE, details: err.message, serious: true };
  if (err instanceof ReversalMismatchError || err instanceof FailedPreconditionError) {
    return { code: Status.FAILED_PRECONDITION, details: err.message, serious: false };
  }
  if (err instanceof WrongPasswordError) {
    return {
      code: Status.PERMISSION_DENIED,
      details: err.message,
      serious: false,
      trailers: { 'password-attempts-left': String(err.attemptsLeft) },
    };
  }
  if (err instanceof PasswordLockedError) {
    return { code: Status.RESOURCE_EXHAUSTED, details: err.message, serious: false, trailers: { 'password-attempts-left': '0' } };
  }
  if (err instanceof PermissionDeniedError) return { code: Status.PERMISSION_DENIED, details: err.message, serious: false };
  if (err instanceof NotFoundError) return { code: Status.NOT_FOUND, details: err.message, serious: false };
  if (err instanceof UnimplementedError) return { code: Status.UNIMPLEMENTED, details: err.message, serious: false };
  if (err instanceof PasswordPoolBusyError) {
    return { code: Status.RESOURCE_EXHAUSTED, details: 'too many password checks waiting; retry in a moment', serious: true };
  }
  if (err instanceof CancelledError) return { code: Status.CANCELLED, details: err.message, serious: false };
  if (err instanceof ResourceExhaustedError) return { code: Status.RESOURCE_EXHAUSTED, details: err.message, serious: false };
  if (err instanceof LedgerDownError && !err.sent) {
    // The breaker logged once when it opened; a line per refused call would flood the log.
    return { code: Status.UNAVAILABLE, details: LEDGER_DOWN, serious: false };
  }
  if (isRedisUnavailable(err)) return { code: Status.UNAVAILABLE, details: OUTCOME_UNKNOWN, serious: !(err instanceof LedgerDownError) };
  if (err instanceof LedgerInvariantError)
    return { code: Status.INTERNAL, details: 'ledger invariant broken; the operator has been alerted', serious: true };
  return { code: Status.INTERNAL, details: 'internal error; retry with the same sequence number', serious: true };
}

export { isRedisUnavailable };

export {
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PasswordLockedError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnimplementedError,
  WrongPasswordError,
};
