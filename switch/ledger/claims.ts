// A terminal's sequence number names one request of one card, whichever shard the card is in. Before
// a request runs its script in the card's shard, it claims (terminal, sequence) for its card in the
// terminal's slot with one SET NX GET; a claim held by another card is an idempotency conflict.
// A crash between the claim and the script leaves a claim for the same card, which the retry passes.
// A request whose script refused without recording anything releases the claim it took (release), so
// the refusal changes nothing and the number stays free for the corrected request.
// Built once by app.ts (SwitchContext.claims) from the ledger access and the request records' lifetime.
import type { LedgerAccess } from './access.js';
import { IdempotencyConflictError, ReversalMismatchError } from './ledger.js';
import { releaseId } from './money.js';

const UNKNOWN_PREFIX = '?';

export class SequenceClaims {
  /**
   * @param ledger keys and the script runner (the claim is one command on the hot-path channel)
   * @param requestTtlSec a claim lives as long as the request records it guards
   */
  constructor(
    private readonly ledger: LedgerAccess,
    private readonly requestTtlSec: number,
  ) {}

  /** Claims the sequence number for `owner`; returns the earlier owner, or null when this claim is the first. */
  async claim(terminalId: string, sequence: number, owner: string): Promise<string | null> {
    const key = this.ledger.keys.sequenceClaim(terminalId, sequence);
    const previous = await this.ledger.scripts.command(['SET', key, owner, 'EX', this.requestTtlSec, 'NX', 'GET']);
    return previous === null ? null : String(previous);
  }

  /** Who holds the sequence number now (null: nobody), for a payment whose script found it taken. */
  async owner(terminalId: string, sequence: number): Promise<string | null> {
    const owner = await this.ledger.scripts.command(['GET', this.ledger.keys.sequenceClaim(terminalId, sequence)]);
    return owner === null ? null : String(owner);
  }

  /**
   * For payments, water debits, refunds and fees: the sequence number must be this card's or new.
   * Answers true when this call took it now (null before), false when the card held it already (a retry).
   */
  async forCard(terminalId: string, sequence: number, cardNo: string): Promise<boolean> {
    const previous = await this.claim(terminalId, sequence, cardNo);
    if (previous !== null && previous !== cardNo) {
      throw new IdempotencyConflictError(
        `sequence number ${sequence} of terminal ${terminalId} was already used for a different request; use a new sequence number`,
      );
    }
    return previous === null;
  }

  /**
   * Gives back a claim this request took now (forCard answered true) when its script then refused
   * without recording anything: the number is free again, as if the request had never come. Only
   * `cardNo`'s claim is deleted (claim-id.lua 'release', atomic): another card's is left alone.
   * Never for a claim the card held before (a retry): that one may guard a request still in flight.
   * A release that fails throws (the caller answers UNAVAILABLE); the claim then stays until it expires.
   */
  async release(terminalId: string, sequence: number, cardNo: string): Promise<void> {
    await releaseId(this.ledger.scripts, this.ledger.keys.sequenceClaim(terminalId, sequence), cardNo);
  }

  /** For reversals: a reversal presenting another card than the payment's is refused, not tombstoned. */
  async forReversal(terminalId: string, sequence: number, cardNo: string): Promise<void> {
    const previous = await this.claim(terminalId, sequence, cardNo);
    if (previous !== null && previous !== cardNo) {
      throw new ReversalMismatchError(`payment ${sequence} of terminal ${terminalId} was made with a different card`);
    }
  }

  /**
   * Records the decline of a payment whose card is unknown, so that a retry replays it (same time, same
   * bytes) even if the card is registered in between. Returns the decision time of the first answer.
   */
  async unknownCard(terminalId: string, sequence: number, fingerprint: string, nowMs: number): Promise<number> {
    const previous = await this.claim(terminalId, sequence, `${UNKNOWN_PREFIX}${fingerprint}|${nowMs}`);
    if (previous === null) return nowMs;
    const decidedAt = unknownCardDecision(previous, fingerprint);
    if (decidedAt === undefined) {
      throw new IdempotencyConflictError(
        `sequence number ${sequence} of terminal ${terminalId} was already used for a different request; use a new sequence number`,
      );
    }
    return decidedAt;
  }
}

/** When the claim holds an unknown-card decline for this very request, its decision time. */
export function unknownCardDecision(claim: string, fingerprint: string): number | undefined {
  if (!claim.startsWith(UNKNOWN_PREFIX)) return undefined;
  const cut = claim.lastIndexOf('|');
  if (claim.slice(UNKNOWN_PREFIX.length, cut) !== fingerprint) return undefined;
  return Number(claim.slice(cut + 1));
}
