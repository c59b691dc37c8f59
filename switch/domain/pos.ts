// POS payments, reversals and inquiries, independent of gRPC: resolve the credential, call the ledger.
import type { AuthorizeCode, InquireResult, Ledger, ReverseResult } from '../ledger/ledger.js';
import type { CardDirectory } from './cards.js';
import type { Terminal } from './terminals.js';
import { UnimplementedError } from '../grpc/errors.js';

export type PresentedCredential =
  | { readonly kind: 'card'; readonly serial: string }
  | { readonly kind: 'campus_qr'; readonly payload: string }
  | { readonly kind: 'third_party'; readonly code: string };

export interface PaymentRequest {
  readonly sequence: number;
  readonly amountFen: number;
  readonly credential: PresentedCredential;
}

export interface PaymentOutcome {
  readonly code: AuthorizeCode;
  readonly cardNo: string;
  readonly balanceAfterFen: number;
  readonly transactionId: string;
  readonly decidedAtMs: number;
}

export interface PosLimits {
  readonly dailySpendLimitFen: number;
}

export class PosDomain {
  constructor(
    private readonly ledger: Ledger,
    private readonly cards: CardDirectory,
    private readonly limits: PosLimits,
  ) {}

  private async resolve(credential: PresentedCredential): Promise<{ cardNo: string | undefined; serial: string }> {
    if (credential.kind === 'card') return { cardNo: await this.cards.cardForSerial(credential.serial), serial: credential.serial };
    throw new UnimplementedError(
      credential.kind === 'campus_qr'
        ? 'campus QR payments are not enabled on this switch yet; ask the cardholder to tap the card'
        : 'Alipay / WeChat payment codes are not enabled on this switch yet; ask the cardholder to tap the card',
    );
  }

  async authorize(terminal: Terminal, request: PaymentRequest): Promise<PaymentOutcome> {
    const { cardNo, serial } = await this.resolve(request.credential);
    if (cardNo === undefined) {
      // Nothing to record: no account means no money can move, and a retry gets the same answer.
      return { code: 'unknown_card', cardNo: '', balanceAfterFen: 0, transactionId: '', decidedAtMs: Date.now() };
    }
    const result = await this.ledger.authorize({
      cardNo,
      presentedSerial: serial,
      amountFen: request.amountFen,
      credentialKind: request.credential.kind,
      terminalId: terminal.id,
      sequence: request.sequence,
      merchantId: terminal.merchantId,
      dailyLimitFen: this.limits.dailySpendLimitFen,
    });
    return { ...result, cardNo: result.code === 'unknown_card' ? '' : cardNo };
  }

  async reverse(
    terminal: Terminal,
    request: { originalSequence: number; amountFen: number; credential: PresentedCredential },
  ): Promise<ReverseResult | 'unknown_card'> {
    const { cardNo } = await this.resolve(request.credential);
    if (cardNo === undefined) return 'unknown_card';
    return this.ledger.reverse({ cardNo, amountFen: request.amountFen, terminalId: terminal.id, sequence: request.originalSequence });
  }

  async inquire(credential: PresentedCredential): Promise<(InquireResult & { cardNo: string }) | undefined> {
    const { cardNo, serial } = await this.resolve(credential);
    if (cardNo === undefined) return undefined;
    return { ...(await this.ledger.inquire(cardNo, serial)), cardNo };
  }
}
