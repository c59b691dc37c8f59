// Card passwords: exactly six digits, stored as a peppered scrypt hash. Six digits are only a million
// guesses, so the hash must be slow and the store alone must not be enough to guess offline: the input
// to scrypt is HMAC-SHA256(pepper, pin), and the pepper lives in the server's configuration, not Redis.
// The one exception is an imported card's untouched initial password: no hash (initialPasswordMatches).
//
// hashPassword and verifyPassword are synchronous and CPU-heavy (scryptSync). Call them from the password
// worker (switch/workers/password-worker.ts) only, never on the event loop of the switch.
import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';

export const PIN_PATTERN = /^\d{6}$/;
export const PIN_LENGTH = 6;

/** Full cost: about 59 ms per hash on the reference machine; used for every password a person sets. */
export const FULL_SCRYPT_N = 16384;
/**
 * The cost imports used to hash initial passwords at. Imports no longer hash at all (an imported card
 * stores no hash: see initialPasswordMatches), but cards imported before that still hold such hashes;
 * they verify as any other and are rehashed at full cost on the first correct entry (see needsRehash).
 */
export const IMPORT_SCRYPT_N = 1024;
export const MIN_SCRYPT_N = 1024;
/** 128 * N * r bytes of memory per hash: 2^17 with r = 8 is 128 MiB, the most one worker may take. */
export const MAX_SCRYPT_N = 131072;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
export const SALT_BYTES = 16;
export const HASH_BYTES = 32;

const ENCODED_PATTERN = /^scrypt\$(\d{1,7})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

export class MalformedPasswordHashError extends Error {
  override readonly name = 'MalformedPasswordHashError';
}

/**
 * The guide's rule: the last six characters of the document number, every non-digit replaced by 1
 * ('11010519900307123X' -> '071231', passport 'E1234A678' -> '341678').
 */
export function initialPassword(documentNumber: string): string {
  if (documentNumber.length < PIN_LENGTH) {
    throw new RangeError(`document number must have at least ${PIN_LENGTH} characters to derive the initial password`);
  }
  return documentNumber.slice(-PIN_LENGTH).replace(/\D/g, '1');
}

/**
 * An imported card stores no hash while its password is the initial one: a hash of a value derivable
 * from the document number, stored next to it in the same account, would protect nothing (and hashing
 * 20,000 of them was most of an import's time). The PIN is compared with the document number's initial
 * password in constant time; a document number too short to have one matches nothing. Cheap (no scrypt):
 * safe on the event loop.
 */
export function initialPasswordMatches(pin: string, documentNumber: string): boolean {
  if (!PIN_PATTERN.test(pin) || documentNumber.length < PIN_LENGTH) return false;
  // Both are PIN_LENGTH ASCII characters here, so the buffers have the equal length timingSafeEqual needs.
  return timingSafeEqual(Buffer.from(pin, 'latin1'), Buffer.from(initialPassword(documentNumber), 'latin1'));
}

export function isValidScryptN(N: number): boolean {
  // scrypt needs a power of two; the bounds keep a forged or mistyped cost from eating the worker's memory.
  return Number.isInteger(N) && N >= MIN_SCRYPT_N && N <= MAX_SCRYPT_N && (N & (N - 1)) === 0;
}

function assertScryptN(N: number): void {
  if (!isValidScryptN(N)) {
    throw new RangeError(`scrypt N must be a power of two between ${MIN_SCRYPT_N} and ${MAX_SCRYPT_N}, got ${N}`);
  }
}

function assertPepper(pepper: string): void {
  if (pepper.length === 0) throw new RangeError('the password pepper must not be empty');
}

function derive(pin: string, pepper: string, N: number, r: number, p: number, salt: Buffer): Buffer {
  const peppered = createHmac('sha256', pepper).update(pin).digest();
  // maxmem is set explicitly: Node's default (32 MiB) would reject the upper end of the allowed N.
  return scryptSync(peppered, salt, HASH_BYTES, { N, r, p, maxmem: 256 * N * r });
}

export function hashPassword(pin: string, pepper: string, options: { readonly N: number }): string {
  if (!PIN_PATTERN.test(pin)) throw new RangeError('a card password must be exactly 6 digits');
  assertPepper(pepper);
  assertScryptN(options.N);
  const salt = randomBytes(SALT_BYTES);
  const hash = derive(pin, pepper, options.N, SCRYPT_R, SCRYPT_P, salt);
  return `scrypt$${options.N}$${SCRYPT_R}$${SCRYPT_P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Throws MalformedPasswordHashError: a stored hash that does not parse is corruption, not a wrong password. */
export function parsePasswordHash(encoded: string): ScryptParams {
  const m = ENCODED_PATTERN.exec(encoded);
  if (m === null) throw new MalformedPasswordHashError('stored password hash is not in the form scrypt$N$r$p$salt$hash');
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const salt = Buffer.from(m[4] ?? '', 'base64');
  const hash = Buffer.from(m[5] ?? '', 'base64');
  if (!isValidScryptN(N) || r !== SCRYPT_R || p !== SCRYPT_P) {
    throw new MalformedPasswordHashError(`stored password hash has unsupported cost N=${N} r=${r} p=${p}`);
  }
  if (salt.length !== SALT_BYTES || hash.length !== HASH_BYTES) {
    throw new MalformedPasswordHashError('stored password hash has a salt or hash of the wrong length');
  }
  return { N, r, p, salt, hash };
}

export function verifyPassword(pin: string, encoded: string, pepper: string): boolean {
  assertPepper(pepper);
  const stored = parsePasswordHash(encoded);
  // A malformed PIN can never match; still parse the stored hash first so corruption is always loud.
  if (!PIN_PATTERN.test(pin)) return false;
  const presented = derive(pin, pepper, stored.N, stored.r, stored.p, stored.salt);
  return timingSafeEqual(presented, stored.hash);
}

/** True when the hash was made at a lower cost than the target (e.g. at import); rehash after a good verify. */
export function needsRehash(encoded: string, targetN: number): boolean {
  assertScryptN(targetN);
  return parsePasswordHash(encoded).N < targetN;
}
