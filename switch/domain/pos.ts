// POS payments, reversals and inquiries, independent of gRPC: resolve the credential, check the card
// password when one is sent, call the ledger.
import type { SwitchContext } from '../context.js';
import type { AuthorizeCode, InquireResult, ReverseResult } from '../ledger/ledger.js';
import type { Terminal } from './terminals.js';
import { InvalidArgumentError, UnimplementedError } from '../errors.js';
import { checkCardPassword, passwordBusyError } from './card-password.js';
import { unknownCardDecision } from '../ledger/claims.js';
import { cardStatusOf } from '../ledger/channel-payments.js';
import { IdempotencyConflictError, SequenceTakenError, type PresentedCampusQr } from '../ledger/ledger.js';
import { openCampusQr } from './campus-qr.js';
import { ChannelPayments, type ChannelPaymentCode } from './channel-payment.js';
import type { ChannelName } from '../channels/channel.js';

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

export type PaymentCode =
  AuthorizeCode | 'wrong_pin' | 'pin_locked' | Exclude<ChannelPaymentCode, 'approved' | 'already_reversed' | 'insufficient_funds'>;

export interface PaymentOutcome {
  readonly code: PaymentCode;
  readonly cardNo: string;
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
  readonly pinAttemptsLeft: number;
  /** A payment code's channel (alipay, wechat); undefined for campus-card payments. */
  readonly channel?: ChannelName;
}

export interface ResolvedCredential {
  /** Undefined when no card has this credential (an unknown serial, a campus QR code that is not genuine). */
  readonly cardNo: string | undefined;
  /** The serial of a card tap; '' for other credentials (only a tap syncs a card). */
  readonly serial: string;
  readonly campusQr?: PresentedCampusQr | undefined;
}

/** Finds the card account behind a credential; undefined when no card has it. */
export async function resolveCredential(ctx: SwitchContext, credential: PresentedCredential): Promise<ResolvedCredential> {
  if (credential.kind === 'card') return { cardNo: await ctx.cards.cardForSerial(credential.serial), serial: credential.serial };
  if (credential.kind === 'campus_qr') {
    const opened = openCampusQr(ctx, credential.payload);
    return { cardNo: opened?.cardNo, serial: '', campusQr: opened?.qr };
  }
  // Payment codes name a channel's payer, not a card: ChannelPayments handles them before this is reached.
  throw new UnimplementedError('a payment code does not name a campus card; it pays through its channel only');
}

/** Account statuses authorize.lua declines before any limit or password: lost, frozen, cancelled. */
const STOPPED_STATUSES: ReadonlySet<string> = new Set(['L', 'F', 'C']);

/** The fingerprint of a request whose credential names no card (its decline is replayed on a retry). */
function unknownFingerprint(credential: PresentedCredential, serial: string, amountFen: number): string {
  return credential.kind === 'campus_qr' ? `campus_qr:${credential.payload}|${amountFen}` : `${credential.kind}:${serial}|${amountFen}`;
}

/** How a request whose credential names no card is declined. */
function unknownCodeOf(request: PaymentRequest): PaymentCode {
  return request.credential.kind === 'campus_qr' ? 'qr_invalid' : 'unknown_card';
}

/** A campus QR code that could not pay tells the POS nothing about whose it was. */
function withoutHolder(outcome: PaymentOutcome): PaymentOutcome {
  if (outcome.code !== 'qr_invalid' && outcome.code !== 'qr_expired' && outcome.code !== 'qr_used') return outcome;
  return { ...outcome, cardNo: '', balanceAfterFen: 0 };
}

export class PosDomain {
  constructor(
    private readonly ctx: SwitchContext,
    /** Built once by app.ts (its follow-up loop shares it); a test may leave it to the default. */
    readonly channelPayments: ChannelPayments = new ChannelPayments(ctx),
  ) {}

  async authorize(terminal: Terminal, request: PaymentRequest): Promise<PaymentOutcome> {
    if (request.credential.kind === 'third_party') return this.payWithCode(terminal, request, request.credential.code);
    return withoutHolder(await this.pay(terminal, request));
  }

  private async payWithCode(terminal: Terminal, request: PaymentRequest, code: string): Promise<PaymentOutcome> {
    const outcome = await this.channelPayments.pay(terminal, { sequence: request.sequence, amountFen: request.amountFen, code });
    return {
      code: outcome.code,
      cardNo: outcome.cardNo,
      // The campus balance does not move, and a code tells the POS nothing about the card's balance.
      balanceAfterFen: 0,
      transactionId: outcome.transactionId,
      decidedAtMs: outcome.decidedAtMs,
      pinAttemptsLeft: 0,
      channel: outcome.channel,
    };
  }

  /** QueryTransaction: a payment code's outcome now. */
  async queryTransaction(
    terminal: Terminal,
    by: { readonly sequence: number } | { readonly transactionId: string },
  ): Promise<PaymentOutcome & { readonly amountFen: number }> {
    const outcome = await this.channelPayments.query(terminal, by);
    return {
      code: outcome.code,
      cardNo: outcome.cardNo,
      balanceAfterFen: 0,
      transactionId: outcome.transactionId,
      decidedAtMs: outcome.decidedAtMs,
      pinAttemptsLeft: 0,
      channel: outcome.channel,
      amountFen: outcome.amountFen,
    };
  }

  private async pay(terminal: Terminal, request: PaymentRequest): Promise<PaymentOutcome> {
    // The common path (a known card, no PIN, approved or declined by the script) builds no closures and
    // no fingerprint: each is made only on the path that needs it.
    const { cardNo, serial, campusQr } = await resolveCredential(this.ctx, request.credential);
    if (cardNo === undefined) {
      // No account, so no money can move; the decline is still recorded so a retry replays it.
      const fingerprint = unknownFingerprint(request.credential, serial, request.amountFen);
      const decidedAtMs = await this.ctx.claims.unknownCard(terminal.id, request.sequence, fingerprint, this.ctx.now());
      return { ...this.declined(unknownCodeOf(request), ''), decidedAtMs };
    }
    // The sequence claim: inside the payment script on one Redis (one command less per payment), with
    // its own command first on a Cluster, and first for a PIN payment (a number taken by another card
    // is refused before its password is checked).
    const claimInScript = this.ctx.ledger.claimsInScript && request.pin === '';
    if (!claimInScript) {
      const previousOwner = await this.ctx.claims.claim(terminal.id, request.sequence, cardNo);
      if (previousOwner !== null && previousOwner !== cardNo) return this.sequenceTaken(terminal, request, serial, previousOwner);
    }
    let pinVerified = false;
    if (request.pin !== '') {
      const checked = await this.checkPin(terminal, request, cardNo);
      if (checked !== 'verified' && checked !== 'card_stopped') return checked;
      pinVerified = checked === 'verified';
    }
    let result;
    try {
      result = await this.ctx.ledger.authorize({
        cardNo,
        presentedSerial: serial,
        amountFen: request.amountFen,
        credentialKind: request.credential.kind,
        terminalId: terminal.id,
        sequence: request.sequence,
        merchantId: terminal.merchantId,
        pinVerified,
        limits: this.ctx.config.limits,
        campusQr,
        claimSequence: claimInScript,
      });
    } catch (err) {
      if (!(err instanceof SequenceTakenError)) throw err;
      // Claims only expire, never change hands: the owner read now is the one the script met.
      const owner = await this.ctx.claims.owner(terminal.id, request.sequence);
      return this.sequenceTaken(terminal, request, serial, owner ?? '');
    }
    return { ...result, cardNo: result.code === 'unknown_card' ? '' : cardNo, pinAttemptsLeft: 0 };
  }

  /**
   * The PIN step of a payment: the decided answer of a retry, a decline for a wrong or locked password,
   * 'verified' when the password was checked and right, or 'card_stopped' when the card is lost, frozen
   * or cancelled. A stopped card's password is not checked at all: authorize.lua declines it for its
   * status (recorded, so a retry replays it), and a finder typing guesses learns only that the card is
   * stopped, without counting them toward the lock that would keep the owner from cancelling the loss.
   */
  private async checkPin(
    terminal: Terminal,
    request: PaymentRequest,
    cardNo: string,
  ): Promise<PaymentOutcome | 'verified' | 'card_stopped'> {
    const ledgerRequest = {
      cardNo,
      amountFen: request.amountFen,
      credentialKind: request.credential.kind,
      terminalId: terminal.id,
      sequence: request.sequence,
    };
    // Both read together: one round trip, and only PIN payments pay for the status read.
    const [decided, status] = await Promise.all([this.ctx.ledger.decidedPayment(ledgerRequest), cardStatusOf(this.ctx, cardNo)]);
    // A retry of a decided PIN payment replays its answer without another (costly) password check.
    if (decided !== undefined) return { ...decided, cardNo: decided.code === 'unknown_card' ? '' : cardNo, pinAttemptsLeft: 0 };
    if (status !== undefined && STOPPED_STATUSES.has(status)) return 'card_stopped';
    // Wrong or locked passwords are not recorded under the request key: the cardholder may try again.
    const check = await checkCardPassword(this.ctx, cardNo, request.pin, { terminalId: terminal.id });
    if (check.ok) return 'verified';
    if (check.reason === 'unknown_card') return this.declined('unknown_card', '');
    if (check.reason === 'locked') return this.declined('pin_locked', cardNo);
    if (check.reason === 'busy') throw passwordBusyError();
    return this.declined('wrong_pin', cardNo, check.attemptsLeft);
  }

  /** A payment declined before the ledger moved anything. */
  private declined(code: PaymentCode, cardNo: string, pinAttemptsLeft = 0): PaymentOutcome {
    return { code, cardNo, balanceAfterFen: 0, transactionId: '', decidedAtMs: this.ctx.now(), pinAttemptsLeft };
  }

  /** The sequence number is claimed by `previousOwner` (a card number, or the fingerprint of an unknown card's request). */
  private sequenceTaken(terminal: Terminal, request: PaymentRequest, serial: string, previousOwner: string): PaymentOutcome {
    const decidedAtMs = unknownCardDecision(previousOwner, unknownFingerprint(request.credential, serial, request.amountFen));
    // The card was unknown when this request first came: its first answer stands.
    if (decidedAtMs !== undefined) return { ...this.declined(unknownCodeOf(request), ''), decidedAtMs };
    throw new IdempotencyConflictError(
      `sequence number ${request.sequence} of terminal ${terminal.id} was already used for a different request; use a new sequence number`,
    );
  }

  async reverse(
    terminal: Terminal,
    request: { originalSequence: number; amountFen: number; credential: PresentedCredential },
  ): Promise<ReverseResult | 'unknown_card'> {
    if (request.credential.kind === 'third_party') {
      return this.channelPayments.reverse(terminal, request.originalSequence, request.amountFen);
    }
    const { cardNo } = await resolveCredential(this.ctx, request.credential);
    if (cardNo === undefined) return 'unknown_card';
    await this.ctx.claims.forReversal(terminal.id, request.originalSequence, cardNo);
    return this.ctx.ledger.reverse({ cardNo, amountFen: request.amountFen, terminalId: terminal.id, sequence: request.originalSequence });
  }

  async inquire(credential: PresentedCredential): Promise<(InquireResult & { cardNo: string }) | undefined> {
    // A code is shown to pay once; reading a holder's balance with it would tell a POS more than a tap.
    if (credential.kind !== 'card')
      throw new InvalidArgumentError('Inquire reads a physical card; campus QR and payment codes are for paying only');
    const { cardNo, serial } = await resolveCredential(this.ctx, credential);
    if (cardNo === undefined) return undefined;
    return { ...(await this.ctx.ledger.inquire(cardNo, serial)), cardNo };
  }
}
