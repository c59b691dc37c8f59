// Refusals the domain raises, independent of any transport. grpc/errors.ts maps each to a gRPC status
// with its message; a later HTTP gateway maps the same classes to HTTP codes.

/** A request that can never succeed as sent. */
export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError';
}

export class PermissionDeniedError extends Error {
  override readonly name = 'PermissionDeniedError';
}

export class FailedPreconditionError extends Error {
  override readonly name = 'FailedPreconditionError';
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

export class UnimplementedError extends Error {
  override readonly name = 'UnimplementedError';
}

/** The caller went away (deadline or cancellation) before the work finished; nothing to answer. */
export class CancelledError extends Error {
  override readonly name = 'CancelledError';
}

export class ResourceExhaustedError extends Error {
  override readonly name = 'ResourceExhaustedError';
}

/** A wrong card password; `attemptsLeft` more tries today before password use locks. */
export class WrongPasswordError extends Error {
  override readonly name = 'WrongPasswordError';
  constructor(readonly attemptsLeft: number) {
    super(`wrong card password; ${attemptsLeft} attempt(s) left today (密码错误，今日还可尝试${attemptsLeft}次)`);
  }
}

export class PasswordLockedError extends Error {
  override readonly name = 'PasswordLockedError';
  constructor() {
    super('card password locked after 5 wrong attempts today; try again tomorrow (密码错误次数过多，请明日再试)');
  }
}
