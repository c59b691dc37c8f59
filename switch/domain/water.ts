// Water control (the small wallet), independent of gRPC: resolve the card, call the wallet scripts.
// Showers and water heaters spend only from the small wallet; a settlement POS opens it (first swipe)
// and later charges what was spent to the account by refilling it to 10.00.
import type { SwitchContext } from '../context.js';
import { InvalidArgumentError } from '../errors.js';
import { unknownCardDecision } from '../ledger/claims.js';
import { IdempotencyConflictError } from '../ledger/ledger.js';
import type { WaterLedger, SettleResult, WaterDebitResult } from '../ledger/water.js';
import { resolveCredential, type PresentedCredential } from './pos.js';
import type { Terminal } from './terminals.js';

export interface WaterDebitRequest {
  readonly sequence: number;
  readonly amountFen: number;
  readonly credential: PresentedCredential;
}

export interface SettleRequest {
  readonly sequence: number;
  /** Settlement POS read the physical card only. */
  readonly cardSerial: string;
}

/** Built once by app.ts with the switch's WaterLedger and handed to the PosService water handlers. */
export class WaterDomain {
  constructor(
    private readonly ctx: SwitchContext,
    private readonly ledger: WaterLedger,
  ) {}

  /** Spends from the small wallet of the card on the reader: water controllers take only a card. */
  async debit(terminal: Terminal, request: WaterDebitRequest): Promise<WaterDebitResult> {
    if (request.credential.kind !== 'card') {
      throw new InvalidArgumentError(
        'WaterDebit accepts only a card tap: water controllers read the physical card (the small wallet has no QR or payment-code use)',
      );
    }
    const { cardNo, serial } = await resolveCredential(this.ctx, request.credential);
    const fingerprint = `wpay:${request.credential.kind}:${serial}|${request.amountFen}`;
    const unknownAt = await this.claim(terminal.id, request.sequence, cardNo, fingerprint);
    if (cardNo === undefined || unknownAt !== undefined) {
      return { code: 'unknown_card', smallWalletAfterFen: 0, transactionId: '', decidedAtMs: unknownAt ?? this.ctx.now() };
    }
    return this.ledger.debit({
      cardNo,
      presentedSerial: serial,
      amountFen: request.amountFen,
      credentialKind: request.credential.kind,
      terminalId: terminal.id,
      sequence: request.sequence,
      merchantId: terminal.merchantId,
    });
  }

  /** Opens the small wallet on the first swipe, afterwards charges what was spent and refills it. */
  async settle(terminal: Terminal, request: SettleRequest): Promise<SettleResult> {
    const cardNo = await this.ctx.cards.cardForSerial(request.cardSerial);
    const unknownAt = await this.claim(terminal.id, request.sequence, cardNo, `wset:card:${request.cardSerial}`);
    if (cardNo === undefined || unknownAt !== undefined) {
      return {
        code: 'unknown_card',
        balanceAfterFen: 0,
        smallWalletAfterFen: 0,
        spentFen: 0,
        movedToWalletFen: 0,
        opened: false,
        transactionId: '',
        decidedAtMs: unknownAt ?? this.ctx.now(),
      };
    }
    return this.ledger.settle({ cardNo, presentedSerial: request.cardSerial, terminalId: terminal.id, sequence: request.sequence });
  }

  /**
   * Claims (terminal, sequence) for the card ledger-wide (the request record in the card's shard cannot
   * see another shard). Returns the decision time when the request is, or first was, an unknown-card
   * decline, which a retry replays even if the card was registered in between; throws
   * IdempotencyConflictError when the sequence number belongs to another request.
   */
  private async claim(terminalId: string, sequence: number, cardNo: string | undefined, fingerprint: string): Promise<number | undefined> {
    if (cardNo === undefined) return this.ctx.claims.unknownCard(terminalId, sequence, fingerprint, this.ctx.now());
    const previousOwner = await this.ctx.claims.claim(terminalId, sequence, cardNo);
    if (previousOwner === null || previousOwner === cardNo) return undefined;
    const decidedAtMs = unknownCardDecision(previousOwner, fingerprint);
    if (decidedAtMs !== undefined) return decidedAtMs;
    throw new IdempotencyConflictError(
      `sequence number ${sequence} of terminal ${terminalId} was already used for a different request; use a new sequence number`,
    );
  }
}
