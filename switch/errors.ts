// Refusals the domain raises, independent of any transport. grpc/errors.ts maps each to a gRPC status
// with its message; gateway/errors.ts maps the same classes to HTTP codes and JSON bodies.
//
// The message is English (operators and developers read it in logs and gRPC details). A refusal a
// cardholder reads on the phone may also carry a machine `reason` (e.g. CARD_NOT_SYNCED), a zh-CN text
// and the request `field` it is about; the gateway falls back to a generic text per class without them.

export interface RefusalDetails {
  /** A stable machine code, UPPER_SNAKE_CASE, e.g. 'CARD_NOT_SYNCED'. */
  readonly reason?: string;
  /** What the cardholder reads (zh-CN). */
  readonly zh?: string;
  /** The request field the refusal is about (the page shows the message next to it). */
  readonly field?: string;
}

export class DomainError extends Error {
  readonly reason: string | undefined;
  readonly zh: string | undefined;
  readonly field: string | undefined;
  constructor(message: string, details: RefusalDetails = {}) {
    super(message);
    this.reason = details.reason;
    this.zh = details.zh;
    this.field = details.field;
  }
}

/** A request that can never succeed as sent. */
export class InvalidArgumentError extends DomainError {
  override readonly name = 'InvalidArgumentError';
}

/** Who is calling is not known (no credentials, a forged or expired token, a session that ended). */
export class UnauthenticatedError extends DomainError {
  override readonly name = 'UnauthenticatedError';
}

export class PermissionDeniedError extends DomainError {
  override readonly name = 'PermissionDeniedError';
}

export class FailedPreconditionError extends DomainError {
  override readonly name = 'FailedPreconditionError';
}

export class NotFoundError extends DomainError {
  override readonly name = 'NotFoundError';
}

/** The thing already exists or is held by someone else (a card bound to another user ...). */
export class AlreadyExistsError extends DomainError {
  override readonly name = 'AlreadyExistsError';
}

export class UnimplementedError extends DomainError {
  override readonly name = 'UnimplementedError';
}

/** The caller went away (deadline or cancellation) before the work finished; nothing to answer. */
export class CancelledError extends DomainError {
  override readonly name = 'CancelledError';
}

export class ResourceExhaustedError extends DomainError {
  override readonly name = 'ResourceExhaustedError';
}

/** A service the request needs (an identity provider ...) did not answer; nothing changed, retry later. */
export class UnavailableError extends DomainError {
  override readonly name = 'UnavailableError';
}

/** A wrong card password; `attemptsLeft` more tries today before password use locks. */
export class WrongPasswordError extends DomainError {
  override readonly name = 'WrongPasswordError';
  constructor(readonly attemptsLeft: number) {
    super(`wrong card password; ${attemptsLeft} attempt(s) left today (密码错误，今日还可尝试${attemptsLeft}次)`, {
      reason: 'WRONG_PASSWORD',
      zh: `卡密码错误，今日还可尝试${attemptsLeft}次`,
      field: 'password',
    });
  }
}

export class PasswordLockedError extends DomainError {
  override readonly name = 'PasswordLockedError';
  constructor() {
    super('card password locked after 5 wrong attempts today; try again tomorrow (密码错误次数过多，请明日再试)', {
      reason: 'PASSWORD_LOCKED',
      zh: '卡密码今日错误次数过多，已锁定，请明日再试',
      field: 'password',
    });
  }
}
