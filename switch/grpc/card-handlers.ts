// Card lifecycle over gRPC: identify and sync (kiosk), loss and cancel loss, password change, and
// the operator's terminal registration, card replacement, freeze, limits, lookups and imports.
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
import { CARD_SERIAL_PATTERN, maskName } from '../domain/cards.js';
import { changeCardPassword, requireCardPassword } from '../domain/card-password.js';
import { checkCardNumber, resolveCardholder, resolveCardTap } from '../domain/cardholder.js';
import { cancelCardLoss, reportCardLost } from '../domain/card-status.js';
import { IMPORT_SCRYPT_N } from '../domain/password.js';
import { TERMINAL_KINDS, type TerminalKind, validateNewTerminal } from '../domain/terminals.js';
import { importCardholders, importTerminals, parseCardholdersCsv, parseTerminalsCsv, type RowError } from '../data/import.js';
import { formatYuan } from '../money.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import { CARD_STATUS_TO_PROTO, holderTypeToProto } from './pos-service.js';
import { callingOperator, callingTerminal, unary } from './unary.js';

const MAX_IMPORT_CSV_CHARS = 8 * 1024 * 1024;
const MAX_REASON_LENGTH = 200;
const MAX_LIMIT_FEN = 100_000_000;

/** The card as kiosk, phone and operator see it; presenting the current serial completes the card sync. */
export async function cardSummary(ctx: SwitchContext, cardNo: string, serial: string): Promise<CardSummary> {
  const card = await ctx.ledger.inquire(cardNo, serial);
  if (card.code !== 'found') throw new NotFoundError(`card ${cardNo} does not exist`);
  const initial = await ctx.redis.hget(ctx.keys.account(cardNo), 'pwdinit');
  return {
    cardNumber: cardNo,
    maskedName: maskName(card.name),
    holderType: holderTypeToProto(card.holderType),
    status: CARD_STATUS_TO_PROTO[card.status ?? 'active'],
    balanceFen: card.balanceFen,
    smallWalletFen: card.smallWalletFen,
    synced: card.synced,
    initialPassword: initial === '1',
  };
}

async function recordOperatorAction(ctx: SwitchContext, operator: string, action: string, fields: Record<string, string>): Promise<void> {
  await ctx.redis.xadd(ctx.keys.operatorLog(), 'MAXLEN', '~', '1000000', '*', 'op', action, 'by', operator, 'ts', String(ctx.now()), ...Object.entries(fields).flat());
}

export function identifyCardHandler(ctx: SwitchContext): handleUnaryCall<IdentifyCardRequest, IdentifyCardResponse> {
  return unary(ctx, 'IdentifyCard', async (req: IdentifyCardRequest) => {
    if (req.card === undefined) throw new InvalidArgumentError('card is required: tap the card on the reader');
    const { cardNo, serial } = await resolveCardTap(ctx, req.card.cardSerial);
    const card = await cardSummary(ctx, cardNo, serial);
    const nag = card.initialPassword ? ' 请尽快修改初始密码' : '';
    return { card, displayText: `余额${formatYuan(card.balanceFen)}元 小钱包${formatYuan(card.smallWalletFen)}元 卡同步完成${nag}` };
  });
}

export function reportLossHandler(ctx: SwitchContext): handleUnaryCall<ReportLossRequest, ReportLossResponse> {
  return unary(ctx, 'ReportLoss', async (req: ReportLossRequest, call) => {
    const { cardNo, serial } = await resolveCardholder(ctx, req.cardholder);
    // Whoever holds the card may report it lost; by number alone, the password proves who asks.
    if (serial === '') await requireCardPassword(ctx, cardNo, req.password, { terminalId: callingTerminal(call).id });
    const result = await reportCardLost(ctx, cardNo);
    return { status: CardStatus.CARD_STATUS_LOST, displayText: result.changed ? '挂失成功' : '此卡已挂失' };
  });
}

export function cancelLossHandler(ctx: SwitchContext): handleUnaryCall<CancelLossRequest, CancelLossResponse> {
  return unary(ctx, 'CancelLoss', async (req: CancelLossRequest, call) => {
    const { cardNo } = await resolveCardholder(ctx, req.cardholder);
    await requireCardPassword(ctx, cardNo, req.password, { terminalId: callingTerminal(call).id });
    const result = await cancelCardLoss(ctx, cardNo);
    return { status: CardStatus.CARD_STATUS_ACTIVE, displayText: result.changed ? '解挂成功' : '此卡未挂失' };
  });
}

export function changePasswordHandler(ctx: SwitchContext): handleUnaryCall<ChangePasswordRequest, ChangePasswordResponse> {
  return unary(ctx, 'ChangePassword', async (req: ChangePasswordRequest, call) => {
    const { cardNo } = await resolveCardholder(ctx, req.cardholder);
    await changeCardPassword(ctx, cardNo, req.oldPassword, req.newPassword, { terminalId: callingTerminal(call).id });
    return { displayText: '密码修改成功' };
  });
}

export function registerTerminalHandler(ctx: SwitchContext): handleUnaryCall<RegisterTerminalRequest, RegisterTerminalResponse> {
  return unary(ctx, 'RegisterTerminal', async (req: RegisterTerminalRequest, call) => {
    if (!(TERMINAL_KINDS as readonly string[]).includes(req.kind)) {
      throw new InvalidArgumentError(`kind must be one of ${TERMINAL_KINDS.join(', ')}, got "${req.kind.slice(0, 20)}"`);
    }
    const terminal = { id: req.terminalId, kind: req.kind as TerminalKind, merchantId: req.merchantId, location: req.location, secret: req.secret };
    const problems = validateNewTerminal(terminal);
    if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
    if ((await ctx.terminals.get(terminal.id)) !== undefined) throw new FailedPreconditionError(`terminal ${terminal.id} is already registered`);
    await ctx.terminals.register(terminal);
    await recordOperatorAction(ctx, callingOperator(call), 'register-terminal', { terminal: terminal.id, kind: terminal.kind, merchant: terminal.merchantId });
    return {};
  });
}

export function setTerminalEnabledHandler(ctx: SwitchContext): handleUnaryCall<SetTerminalEnabledRequest, SetTerminalEnabledResponse> {
  return unary(ctx, 'SetTerminalEnabled', async (req: SetTerminalEnabledRequest, call) => {
    if (!(await ctx.terminals.setEnabled(req.terminalId, req.enabled))) throw new NotFoundError(`terminal ${req.terminalId.slice(0, 40)} is not registered`);
    await recordOperatorAction(ctx, callingOperator(call), req.enabled ? 'enable-terminal' : 'disable-terminal', { terminal: req.terminalId });
    return {};
  });
}

export function replaceCardHandler(ctx: SwitchContext): handleUnaryCall<ReplaceCardRequest, ReplaceCardResponse> {
  return unary(ctx, 'ReplaceCard', async (req: ReplaceCardRequest, call) => {
    const cardNo = checkCardNumber(req.cardNumber);
    if (!CARD_SERIAL_PATTERN.test(req.newCardSerial)) throw new InvalidArgumentError('new_card_serial must be 8 to 20 hex digits');
    const newSerial = req.newCardSerial.toUpperCase();
    if ((await ctx.redis.exists(ctx.keys.account(cardNo))) === 0) throw new NotFoundError(`card ${cardNo} does not exist`);
    // Claim the serial first: a serial already on another card must never be moved silently.
    const claimed = await ctx.redis.set(ctx.keys.serial(newSerial), cardNo, 'NX');
    if (claimed === null && (await ctx.redis.get(ctx.keys.serial(newSerial))) !== cardNo) {
      throw new FailedPreconditionError(`card serial ${newSerial} already belongs to another card`);
    }
    const oldSerial = await ctx.ledger.replaceCard(cardNo, newSerial);
    if (oldSerial === undefined) throw new NotFoundError(`card ${cardNo} does not exist`);
    await recordOperatorAction(ctx, callingOperator(call), 'replace-card', { card: cardNo, old: oldSerial, new: newSerial });
    return { card: await cardSummary(ctx, cardNo, ''), oldCardSerial: oldSerial };
  });
}

function checkReason(reason: string): string {
  if (reason.trim() === '' || reason.length > MAX_REASON_LENGTH) throw new InvalidArgumentError(`reason must be 1-${MAX_REASON_LENGTH} characters`);
  return reason.trim();
}

export function setCardFrozenHandler(ctx: SwitchContext): handleUnaryCall<SetCardFrozenRequest, SetCardFrozenResponse> {
  return unary(ctx, 'SetCardFrozen', async (req: SetCardFrozenRequest, call) => {
    const cardNo = checkCardNumber(req.cardNumber);
    const reason = checkReason(req.reason);
    const result = req.frozen
      ? await ctx.ledger.setStatus(cardNo, 'frozen', ['active', 'lost', 'frozen'])
      : await ctx.ledger.setStatus(cardNo, 'active', ['frozen', 'active']);
    if (result === undefined) throw new NotFoundError(`card ${cardNo} does not exist`);
    if (!result.changed) throw new FailedPreconditionError(`card ${cardNo} is ${result.previous}; it cannot be ${req.frozen ? 'frozen' : 'unfrozen'}`);
    await recordOperatorAction(ctx, callingOperator(call), req.frozen ? 'freeze' : 'unfreeze', { card: cardNo, reason });
    return { status: req.frozen ? CardStatus.CARD_STATUS_FROZEN : CardStatus.CARD_STATUS_ACTIVE };
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
    if (!(await ctx.ledger.setCardLimits(cardNo, limits))) throw new NotFoundError(`card ${cardNo} does not exist`);
    await recordOperatorAction(ctx, callingOperator(call), 'set-limits', { card: cardNo, ...Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, String(v)])) });
    return {};
  });
}

export function getCardHandler(ctx: SwitchContext): handleUnaryCall<GetCardRequest, GetCardResponse> {
  return unary(ctx, 'GetCard', async (req: GetCardRequest) => {
    const cardNo = checkCardNumber(req.cardNumber);
    const card = await cardSummary(ctx, cardNo, '');
    const [serial, personNumber, name] = await ctx.redis.hmget(ctx.keys.account(cardNo), 'ser', 'sno', 'name');
    return { card, cardSerial: serial ?? '', personNumber: personNumber ?? '', name: name ?? '' };
  });
}

function checkCsv(csv: string): string {
  if (csv.length > MAX_IMPORT_CSV_CHARS) throw new InvalidArgumentError(`csv must be at most ${MAX_IMPORT_CSV_CHARS} characters; split the file`);
  return csv;
}

function problemsOf(errors: readonly RowError[]): { line: number; message: string }[] {
  return errors.map((e) => ({ line: e.line, message: e.message }));
}

export function importCardholdersHandler(ctx: SwitchContext): handleUnaryCall<ImportCardholdersRequest, ImportCardholdersResponse> {
  return unary(ctx, 'ImportCardholders', async (req: ImportCardholdersRequest, call) => {
    const parsed = parseCardholdersCsv(checkCsv(req.csv));
    if (parsed.errors.length > 0) return { imported: 0, problems: problemsOf(parsed.errors) };
    const report = await importCardholders({ ledger: ctx.ledger, pool: ctx.passwords }, parsed.rows, { scryptN: IMPORT_SCRYPT_N });
    await recordOperatorAction(ctx, callingOperator(call), 'import-cardholders', { imported: String(report.importedCount), problems: String(report.errors.length) });
    return { imported: report.importedCount, problems: problemsOf(report.errors) };
  });
}

export function importTerminalsHandler(ctx: SwitchContext): handleUnaryCall<ImportTerminalsRequest, ImportTerminalsResponse> {
  return unary(ctx, 'ImportTerminals', async (req: ImportTerminalsRequest, call) => {
    const parsed = parseTerminalsCsv(checkCsv(req.csv));
    if (parsed.errors.length > 0) return { imported: 0, problems: problemsOf(parsed.errors) };
    const report = await importTerminals(ctx.terminals, parsed.rows);
    await recordOperatorAction(ctx, callingOperator(call), 'import-terminals', { imported: String(report.importedCount), problems: String(report.errors.length) });
    return { imported: report.importedCount, problems: problemsOf(report.errors) };
  });
}
