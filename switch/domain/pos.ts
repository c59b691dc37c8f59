// POS payments, reversals and inquiries, independent of gRPC: resolve the credential, check the card
// password when one is sent, call the ledger.
import type { SwitchContext } from '../context.js';
import type { AuthorizeCode, InquireResult, ReverseResult } from '../ledger/ledger.js';
import type { Terminal } from './terminals.js';
import { UnimplementedError } from '../errors.js';
import { checkCardPassword } from './card-password.js';
import { claimSequence, claimSequenceForReversal, claimUnknownCard, unknownCardDecision } from '../ledger/claims.js';
import { IdempotencyConflictError } from '../ledger/ledger.js';

export type PresentedCredential =
  | { readonly kind: 'card'; readonly serial: string }
  | { readonly kind: 'campus_qr'; readonly payload: string }
  | { readonly kind: 'third_party'; readonly code: string };

export interface PaymentRequest {
  readonly sequence: number;
  readonly amountFen: number;
  readonly credential: PresentedCredential;
  /** '' when the cardholder entered no password. */
  readonly pin: string;
}

export type PaymentCode = AuthorizeCode | 'wrong_pin' | 'pin_locked';

export interface PaymentOutcome {
  readonly code: PaymentCode;
  readonly cardNo: string;
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
  readonly pinAttemptsLeft: number;
}

/** Finds the card account behind a credential; undefined when no card has it. */
export async function resolveCredential(
  ctx: SwitchContext,
  credential: PresentedCredential,
): Promise<{ cardNo: string | undefined; serial: string }> {
  if (credential.kind === 'card') return { cardNo: await ctx.cards.cardForSerial(credential.serial), serial: credential.serial };
  throw new UnimplementedError(
    credential.kind === 'campus_qr'
      ? 'campus QR payments are not enabled on this switch yet; ask the cardholder to tap the card'
      : 'Alipay / WeChat payment codes are not enabled on this switch yet; ask the cardholder to tap the card',
  );
}

export class PosDomain {
  constructor(private readonly ctx: SwitchContext) {}

  async authorize(terminal: Terminal, request: PaymentRequest): Promise<PaymentOutcome> {
    const { cardNo, serial } = await resolveCredential(this.ctx, request.credential);
    const declined = (code: PaymentCode, pinAttemptsLeft = 0): PaymentOutcome => ({
      code, cardNo: cardNo ?? '', balanceAfterFen: 0, transactionId: '', decidedAtMs: this.ctx.now(), pinAttemptsLeft,
    });
    const fingerprint = `${request.credential.kind}:${serial}|${request.amountFen}`;
    if (cardNo === undefined) {
      // No account, so no money can move; the decline is still recorded so a retry replays it.
      const decidedAtMs = await claimUnknownCard(this.ctx, terminal.id, request.sequence, fingerprint, this.ctx.now());
      return { ...declined('unknown_card'), decidedAtMs };
    }
    const previousOwner = await claimSequence(this.ctx, terminal.id, request.sequence, cardNo);
    if (previousOwner !== null && previousOwner !== cardNo) {
      const decidedAtMs = unknownCardDecision(previousOwner, fingerprint);
      // The card was unknown when this request first came: its first answer stands.
      if (decidedAtMs !== undefined) return { ...declined('unknown_card'), cardNo: '', decidedAtMs };
      throw new IdempotencyConflictError(
        `sequence number ${request.sequence} of terminal ${terminal.id} was already used for a different request; use a new sequence number`,
      );
    }
    const ledgerRequest = { cardNo, amountFen: request.amountFen, credentialKind: request.credential.kind, terminalId: terminal.id, sequence: request.sequence };
    if (request.pin !== '') {
      // A retry of a decided PIN payment replays its answer without another (costly) password check.
      const decided = await this.ctx.ledger.decidedPayment(ledgerRequest);
      if (decided !== undefined) return { ...decided, cardNo: decided.code === 'unknown_card' ? '' : cardNo, pinAttemptsLeft: 0 };
      // Wrong or locked passwords are not recorded under the request key: the cardholder may try again.
      const check = await checkCardPassword(this.ctx, cardNo, request.pin);
      if (!check.ok && check.reason === 'unknown_card') return { ...declined('unknown_card'), cardNo: '' };
      if (!check.ok && check.reason === 'locked') return declined('pin_locked');
      if (!check.ok && check.reason === 'wrong') return declined('wrong_pin', check.attemptsLeft);
    }
    const result = await this.ctx.ledger.authorize({
      cardNo,
      presentedSerial: serial,
      amountFen: request.amountFen,
      credentialKind: request.credential.kind,
      terminalId: terminal.id,
      sequence: request.sequence,
      merchantId: terminal.merchantId,
      pinVerified: request.pin !== '',
      limits: this.ctx.config.limits,
    });
    return { ...result, cardNo: result.code === 'unknown_card' ? '' : cardNo, pinAttemptsLeft: 0 };
  }

  async reverse(
    terminal: Terminal,
    request: { originalSequence: number; amountFen: number; credential: PresentedCredential },
  ): Promise<ReverseResult | 'unknown_card'> {
    const { cardNo } = await resolveCredential(this.ctx, request.credential);
    if (cardNo === undefined) return 'unknown_card';
    await claimSequenceForReversal(this.ctx, terminal.id, request.originalSequence, cardNo);
    return this.ctx.ledger.reverse({ cardNo, amountFen: request.amountFen, terminalId: terminal.id, sequence: request.originalSequence });
  }

  async inquire(credential: PresentedCredential): Promise<(InquireResult & { cardNo: string }) | undefined> {
    const { cardNo, serial } = await resolveCredential(this.ctx, credential);
    if (cardNo === undefined) return undefined;
    return { ...(await this.ctx.ledger.inquire(cardNo, serial)), cardNo };
  }
}
