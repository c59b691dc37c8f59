// Card lifecycle over gRPC: identify and sync (kiosk), loss and cancel loss, password change, and
// the operator's terminal registration, card replacement, freeze, limits, lookups and imports. Each
// handler validates, calls one function of switch/domain/ (card-view.ts, kiosk.ts, card-admin.ts) and
// maps its answer; the domain logs operator actions.
import type { handleUnaryCall } from '@grpc/grpc-js';
import { CardStatus, type CardSummary } from '../../proto/gen/cardswitch/v1/common.js';
import type {
  CancelLossRequest,
  CancelLossResponse,
  ChangePasswordRequest,
  ChangePasswordResponse,
  IdentifyCardRequest,
  IdentifyCardResponse,
  ReportLossRequest,
  ReportLossResponse,
} from '../../proto/gen/cardswitch/v1/kiosk.js';
import type {
  GetCardRequest,
  GetCardResponse,
  ImportCardholdersRequest,
  ImportCardholdersResponse,
  ImportTerminalsRequest,
  ImportTerminalsResponse,
  RegisterTerminalRequest,
  RegisterTerminalResponse,
  ReplaceCardRequest,
  ReplaceCardResponse,
  SetCardFrozenRequest,
  SetCardFrozenResponse,
  SetCardLimitsRequest,
  SetCardLimitsResponse,
  SetTerminalEnabledRequest,
  SetTerminalEnabledResponse,
} from '../../proto/gen/cardswitch/v1/admin.js';
import type { SwitchContext } from '../context.js';
import {
  importCardholdersCsv,
  importTerminalsCsv,
  registerTerminal,
  replaceCard,
  setCardFrozen,
  setCardLimits,
  setTerminalEnabled,
  type ImportOutcome,
} from '../domain/card-admin.js';
import { cardDetails, identifyCard, type CardView } from '../domain/card-view.js';
import { CARD_SERIAL_PATTERN } from '../domain/cards.js';
import { checkCardNumber } from '../domain/cardholder.js';
import { cancelLossAtKiosk, changePasswordAtKiosk, reportLossAtKiosk } from '../domain/kiosk.js';
import { TERMINAL_KINDS, type TerminalKind } from '../domain/terminals.js';
import { formatYuan } from '../money.js';
import { IMPORT_TOO_LARGE_MESSAGE, MAX_IMPORT_CSV_BYTES } from '../data/import.js';
import { ResourceExhaustedError } from '../errors.js';
import { InvalidArgumentError } from './errors.js';
import { CARD_STATUS_TO_PROTO, holderTypeToProto } from './pos-service.js';
import { kioskCardholder } from './kiosk-cardholder.js';
import { callingOperator, unary } from './unary.js';

const MAX_REASON_LENGTH = 200;
const MAX_LIMIT_FEN = 100_000_000;

/** The card as kiosk and operator see it, in the proto's words. */
export function cardSummaryToProto(card: CardView): CardSummary {
  return {
    cardNumber: card.cardNo,
    maskedName: card.maskedName,
    holderType: holderTypeToProto(card.holderType),
    status: CARD_STATUS_TO_PROTO[card.status],
    balanceFen: card.balanceFen,
    smallWalletFen: card.smallWalletFen,
    synced: card.synced,
    initialPassword: card.initialPassword,
  };
}

export function identifyCardHandler(ctx: SwitchContext): handleUnaryCall<IdentifyCardRequest, IdentifyCardResponse> {
  return unary(ctx, 'IdentifyCard', async (req: IdentifyCardRequest) => {
    if (req.card === undefined) throw new InvalidArgumentError('card is required: tap the card on the reader');
    const card = await identifyCard(ctx, req.card.cardSerial);
    const nag = card.initialPassword ? ' 请尽快修改初始密码' : '';
    return {
      card: cardSummaryToProto(card),
      displayText: `余额${formatYuan(card.balanceFen)}元 小钱包${formatYuan(card.smallWalletFen)}元 卡同步完成${nag}`,
    };
  });
}

export function reportLossHandler(ctx: SwitchContext): handleUnaryCall<ReportLossRequest, ReportLossResponse> {
  return unary(ctx, 'ReportLoss', async (req: ReportLossRequest, call) => {
    const result = await reportLossAtKiosk(ctx, kioskCardholder(req.cardholder, req.password, call));
    return { status: CardStatus.CARD_STATUS_LOST, displayText: result.changed ? '挂失成功' : '此卡已挂失' };
  });
}

export function cancelLossHandler(ctx: SwitchContext): handleUnaryCall<CancelLossRequest, CancelLossResponse> {
  return unary(ctx, 'CancelLoss', async (req: CancelLossRequest, call) => {
    const result = await cancelLossAtKiosk(ctx, kioskCardholder(req.cardholder, req.password, call));
    return { status: CardStatus.CARD_STATUS_ACTIVE, displayText: result.changed ? '解挂成功' : '此卡未挂失' };
  });
}

export function changePasswordHandler(ctx: SwitchContext): handleUnaryCall<ChangePasswordRequest, ChangePasswordResponse> {
  return unary(ctx, 'ChangePassword', async (req: ChangePasswordRequest, call) => {
    await changePasswordAtKiosk(ctx, kioskCardholder(req.cardholder, req.oldPassword, call), req.newPassword);
    return { displayText: '密码修改成功' };
  });
}

export function registerTerminalHandler(ctx: SwitchContext): handleUnaryCall<RegisterTerminalRequest, RegisterTerminalResponse> {
  return unary(ctx, 'RegisterTerminal', async (req: RegisterTerminalRequest, call) => {
    if (!(TERMINAL_KINDS as readonly string[]).includes(req.kind)) {
      throw new InvalidArgumentError(`kind must be one of ${TERMINAL_KINDS.join(', ')}, got "${req.kind.slice(0, 20)}"`);
    }
    const terminal = {
      id: req.terminalId,
      kind: req.kind as TerminalKind,
      merchantId: req.merchantId,
      location: req.location,
      secret: req.secret,
    };
    await registerTerminal(ctx, callingOperator(call), terminal);
    return {};
  });
}

export function setTerminalEnabledHandler(ctx: SwitchContext): handleUnaryCall<SetTerminalEnabledRequest, SetTerminalEnabledResponse> {
  return unary(ctx, 'SetTerminalEnabled', async (req: SetTerminalEnabledRequest, call) => {
    await setTerminalEnabled(ctx, callingOperator(call), req.terminalId, req.enabled);
    return {};
  });
}

export function replaceCardHandler(ctx: SwitchContext): handleUnaryCall<ReplaceCardRequest, ReplaceCardResponse> {
  return unary(ctx, 'ReplaceCard', async (req: ReplaceCardRequest, call) => {
    const cardNo = checkCardNumber(req.cardNumber);
    if (!CARD_SERIAL_PATTERN.test(req.newCardSerial)) throw new InvalidArgumentError('new_card_serial must be 8 to 20 hex digits');
    const replaced = await replaceCard(ctx, callingOperator(call), cardNo, req.requestId, req.newCardSerial.toUpperCase());
    return { card: cardSummaryToProto(replaced.card), oldCardSerial: replaced.oldSerial };
  });
}

function checkReason(reason: string): string {
  if (reason.trim() === '' || reason.length > MAX_REASON_LENGTH)
    throw new InvalidArgumentError(`reason must be 1-${MAX_REASON_LENGTH} characters`);
  return reason.trim();
}

export function setCardFrozenHandler(ctx: SwitchContext): handleUnaryCall<SetCardFrozenRequest, SetCardFrozenResponse> {
  return unary(ctx, 'SetCardFrozen', async (req: SetCardFrozenRequest, call) => {
    const cardNo = checkCardNumber(req.cardNumber);
    const reason = checkReason(req.reason);
    const status = await setCardFrozen(ctx, callingOperator(call), cardNo, req.frozen, reason);
    return { status: CARD_STATUS_TO_PROTO[status] };
  });
}

function checkLimit(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < -1 || value > MAX_LIMIT_FEN) {
    throw new InvalidArgumentError(`${field} must be -1 (use the default) or 0..${MAX_LIMIT_FEN} fen, got ${value}`);
  }
  return value;
}

export function setCardLimitsHandler(ctx: SwitchContext): handleUnaryCall<SetCardLimitsRequest, SetCardLimitsResponse> {
  return unary(ctx, 'SetCardLimits', async (req: SetCardLimitsRequest, call) => {
    const cardNo = checkCardNumber(req.cardNumber);
    const limits = {
      noPinPerPaymentFen: checkLimit(req.noPinPerPaymentFen, 'no_pin_per_payment_fen'),
      noPinPerDayFen: checkLimit(req.noPinPerDayFen, 'no_pin_per_day_fen'),
      dailySpendLimitFen: checkLimit(req.dailySpendLimitFen, 'daily_spend_limit_fen'),
    };
    await setCardLimits(ctx, callingOperator(call), cardNo, limits);
    return {};
  });
}

export function getCardHandler(ctx: SwitchContext): handleUnaryCall<GetCardRequest, GetCardResponse> {
  return unary(ctx, 'GetCard', async (req: GetCardRequest) => {
    const details = await cardDetails(ctx, checkCardNumber(req.cardNumber));
    return {
      card: cardSummaryToProto(details.card),
      cardSerial: details.cardSerial,
      personNumber: details.personNumber,
      name: details.name,
    };
  });
}

/** Counted in UTF-8 bytes, as the receive limit counts the message: one limit and one message, whatever the characters. */
function checkCsv(csv: string): string {
  if (Buffer.byteLength(csv, 'utf8') > MAX_IMPORT_CSV_BYTES) throw new ResourceExhaustedError(IMPORT_TOO_LARGE_MESSAGE);
  return csv;
}

function importToProto(outcome: ImportOutcome): {
  imported: number;
  problems: { line: number; message: string; field: string; messageZh: string }[];
} {
  return {
    imported: outcome.imported,
    problems: outcome.problems.map((e) => ({ line: e.line, message: e.message, field: e.field, messageZh: e.zh })),
  };
}

export function importCardholdersHandler(ctx: SwitchContext): handleUnaryCall<ImportCardholdersRequest, ImportCardholdersResponse> {
  return unary(ctx, 'ImportCardholders', async (req: ImportCardholdersRequest, call) => {
    return importToProto(await importCardholdersCsv(ctx, callingOperator(call), checkCsv(req.csv)));
  });
}

export function importTerminalsHandler(ctx: SwitchContext): handleUnaryCall<ImportTerminalsRequest, ImportTerminalsResponse> {
  return unary(ctx, 'ImportTerminals', async (req: ImportTerminalsRequest, call) => {
    return importToProto(await importTerminalsCsv(ctx, callingOperator(call), checkCsv(req.csv)));
  });
}
