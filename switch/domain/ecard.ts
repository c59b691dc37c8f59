// The electronic campus card (the guide's figures 1-4): binding a WeCom / WeChat user to a card, the
// card as the phone shows it, and its campus QR codes. Transport-free: the gateway's handlers validate
// JSON and call these; every refusal is a domain error with a machine reason, a zh-CN text for the
// cardholder and the field it is about.
//
// One user per card: the account's `eu` (set atomically by ecard-binding.lua). One card per user: the
// user record (Keys.ecardUser), written while the user's lock is held, and always checked against the
// account's `eu` (a record left behind by a crash between the two writes points at a card that is not
// bound to the user, and counts as no binding).
import { randomBytes } from 'node:crypto';
import type { SwitchContext } from '../context.js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  type RefusalDetails,
} from '../errors.js';
import type { CardStatusCode, EcardBindingCode } from '../ledger/ledger.js';
import {
  accountBoundUser,
  claimUserLock,
  deleteUserRecord,
  readBindingCheckFields,
  readEcardCardFields,
  readQrIssueFields,
  releaseUserLock,
  userRecordCard,
  writeUserRecord,
} from '../ledger/ecard.js';
import { appendOperatorLog } from '../ledger/oplog.js';
import { CAMPUS_QR_REFRESH_MS } from '../qr/format.js';
import { maskName } from './cards.js';
import { requireCardPassword } from './card-password.js';
import { channelPayersOfCard, releaseEndedPayers, type PayerChannel } from './channel-payers.js';
import { PERSON_NUMBER_PATTERN } from './cardholder.js';
import { PIN_PATTERN } from './password.js';
import { checkFeeAmount, payUtilityFee } from './fees.js';
import type { FeeAnswer } from '../ledger/money.js';
import type { UtilityTarget } from '../fees/index.js';

export const BINDING_TYPES = ['student', 'staff'] as const;
export type BindingType = (typeof BINDING_TYPES)[number];
export const DOCUMENT_TYPES = ['resident_id', 'passport'] as const;
export type DocumentType = (typeof DOCUMENT_TYPES)[number];

const RESIDENT_ID_PATTERN = /^\d{17}[\dX]$/;
const PASSPORT_PATTERN = /^[A-Z0-9]{5,20}$/;
const PHONE_PATTERN = /^(1\d{10}|\+\d{6,15})$/;
/** WeCom user ids and WeChat openids, namespaced ('wecom:zhangsan', 'wechat:o6_bmjrPTlm6_2sgVt7hMZOPfL2M'). */
export const USER_ID_PATTERN = /^(wecom|wechat):[A-Za-z0-9_.@-]{1,64}$/;
/** A binding or unbinding holds the user's lock at most this long (a password check takes well under a second). */
const USER_LOCK_TTL_SEC = 15;

export interface BindingForm {
  readonly bindingType: BindingType;
  readonly personNumber: string;
  readonly password: string;
  readonly documentType: DocumentType;
  readonly documentNumber: string;
  readonly phone: string;
  readonly consent: boolean;
}

function invalid(field: string, reason: string, zh: string, en: string): InvalidArgumentError {
  return new InvalidArgumentError(en, { reason, zh, field });
}

/** Checks the binding form (guide figure 3) field by field; the first problem is thrown with its field. */
export function checkBindingForm(form: Partial<Record<keyof BindingForm, unknown>>): BindingForm {
  const { bindingType, personNumber, password, documentType, documentNumber, phone, consent } = form;
  if (typeof bindingType !== 'string' || !(BINDING_TYPES as readonly string[]).includes(bindingType)) {
    throw invalid(
      'bindingType',
      'INVALID_BINDING_TYPE',
      '请选择绑定类型：学生或教职工',
      `bindingType must be one of ${BINDING_TYPES.join(', ')}`,
    );
  }
  if (typeof personNumber !== 'string' || !PERSON_NUMBER_PATTERN.test(personNumber)) {
    throw invalid(
      'personNumber',
      'INVALID_PERSON_NUMBER',
      '请输入学号/工号（4-20位字母或数字）',
      'personNumber must be 4-20 letters or digits',
    );
  }
  if (typeof password !== 'string' || !PIN_PATTERN.test(password)) {
    throw invalid(
      'password',
      'INVALID_PASSWORD',
      '卡密码为6位数字；初始密码为证件号后六位，非数字字符用1代替',
      'password must be the 6-digit card password',
    );
  }
  if (typeof documentType !== 'string' || !(DOCUMENT_TYPES as readonly string[]).includes(documentType)) {
    throw invalid(
      'documentType',
      'INVALID_DOCUMENT_TYPE',
      '请选择证件类型：身份证或护照（外籍教师、港澳台学生、留学生请选择护照）',
      `documentType must be one of ${DOCUMENT_TYPES.join(', ')}`,
    );
  }
  const document = typeof documentNumber === 'string' ? documentNumber.trim().toUpperCase() : '';
  if (!(documentType === 'resident_id' ? RESIDENT_ID_PATTERN : PASSPORT_PATTERN).test(document)) {
    throw invalid(
      'documentNumber',
      'INVALID_DOCUMENT_NUMBER',
      documentType === 'resident_id' ? '请输入18位身份证号码' : '请输入正确的护照号码',
      'documentNumber does not look like a document number of that type',
    );
  }
  if (typeof phone !== 'string' || !PHONE_PATTERN.test(phone.trim())) {
    throw invalid(
      'phone',
      'INVALID_PHONE',
      '请输入11位手机号码（境外号码以+和国家代码开头）',
      'phone must be 11 digits starting with 1, or + and the country code',
    );
  }
  if (consent !== true) {
    throw invalid(
      'consent',
      'CONSENT_REQUIRED',
      '请阅读并同意《隐私政策》和《服务协议》',
      'consent to the privacy policy and the service agreement is required',
    );
  }
  return {
    bindingType: bindingType as BindingType,
    personNumber,
    password,
    documentType: documentType as DocumentType,
    documentNumber: document,
    phone: phone.trim(),
    consent,
  };
}

export function checkUserId(userId: string): string {
  if (!USER_ID_PATTERN.test(userId))
    throw new InvalidArgumentError(`user id "${userId.slice(0, 80)}" is not a namespaced WeCom / WeChat id`);
  return userId;
}

// ---- refusals ----------------------------------------------------------------------------------

const NOT_SYNCED: RefusalDetails = {
  reason: 'CARD_NOT_SYNCED',
  zh: '电子校园卡生效前，请先用实体校园卡在校园任一消费终端上贴卡（约2秒显示余额即同步成功），再绑定',
};
const STATUS_REFUSALS: Record<Exclude<CardStatusCode, 'active'>, RefusalDetails & { en: string }> = {
  lost: { reason: 'CARD_LOST', zh: '此卡已挂失，请先解挂后再使用电子校园卡', en: 'the card is reported lost' },
  frozen: { reason: 'CARD_FROZEN', zh: '此卡已被卡务中心冻结，请到卡务中心办理', en: 'the card is frozen by the card office' },
  cancelled: { reason: 'CARD_CANCELLED', zh: '此卡已注销', en: 'the card is cancelled' },
};
const NOT_BOUND: RefusalDetails = { reason: 'NOT_BOUND', zh: '尚未绑定校园卡，请先完成绑定' };

function statusRefusal(status: CardStatusCode | undefined, what: string): FailedPreconditionError | undefined {
  if (status === undefined || status === 'active') return undefined;
  const r = STATUS_REFUSALS[status];
  return new FailedPreconditionError(`${r.en}, so ${what}`, r);
}

function bindingRefusal(code: EcardBindingCode, cardNo: string): Error | undefined {
  switch (code) {
    case 'done':
      return undefined;
    case 'unknown_card':
      return new NotFoundError(`card ${cardNo} does not exist`, { reason: 'CARD_NOT_FOUND', zh: '未找到该校园卡' });
    case 'card_lost':
      return statusRefusal('lost', 'it cannot be bound');
    case 'card_frozen':
      return statusRefusal('frozen', 'it cannot be bound');
    case 'card_cancelled':
      return statusRefusal('cancelled', 'it cannot be bound');
    case 'not_synced':
      return new FailedPreconditionError(
        'the physical card has not been tapped on any terminal since migration (not synced); tap it once, then bind',
        NOT_SYNCED,
      );
    case 'bound_to_other':
      return new AlreadyExistsError(`card ${cardNo} is bound to another user`, {
        reason: 'CARD_BOUND_ELSEWHERE',
        zh: '此卡已绑定其他账号；如非本人操作，请先挂失并到卡务中心处理',
        field: 'personNumber',
      });
    case 'not_bound_to_user':
      return new PermissionDeniedError(`card ${cardNo} is not bound to this user`, NOT_BOUND);
  }
}

// ---- the user's record and lock ----------------------------------------------------------------

/** The card bound to `userId` now, or '' (a record whose card does not name the user back is no binding). */
export async function boundCardOf(ctx: SwitchContext, userId: string): Promise<string> {
  const cardNo = await userRecordCard(ctx, userId);
  if (cardNo === undefined) return '';
  return (await accountBoundUser(ctx, cardNo)) === userId ? cardNo : '';
}

async function withUserLock<T>(ctx: SwitchContext, userId: string, work: () => Promise<T>): Promise<T> {
  const owner = randomBytes(12).toString('base64url');
  if (!(await claimUserLock(ctx, userId, owner, USER_LOCK_TTL_SEC))) {
    throw new AlreadyExistsError('a binding or unbinding of this user is already in progress', {
      reason: 'BINDING_IN_PROGRESS',
      zh: '正在处理上一次绑定/解绑请求，请稍候',
    });
  }
  try {
    return await work();
  } finally {
    await releaseUserLock(ctx, userId, owner).catch((err: unknown) =>
      ctx.log.warn({ err, userId }, 'user lock not released; it expires by itself'),
    );
  }
}

/** Every binding attempt and unbinding, with its outcome, in the operator log (never the password or document). */
async function recordAttempt(ctx: SwitchContext, action: string, userId: string, fields: Record<string, string>): Promise<void> {
  await appendOperatorLog(ctx, action, userId, fields);
}

function outcomeOf(err: unknown): string {
  if (err === undefined) return 'ok';
  const reason = (err as { reason?: unknown }).reason;
  return typeof reason === 'string' ? reason : err instanceof Error ? err.name : 'error';
}

// ---- binding -----------------------------------------------------------------------------------

interface CardholderRecord {
  readonly holderType: string;
  readonly status: CardStatusCode | undefined;
  readonly synced: boolean;
  readonly boundUser: string | undefined;
  readonly documentType: string;
  readonly documentNumber: string;
  readonly phone: string;
}

async function cardholderRecord(ctx: SwitchContext, cardNo: string): Promise<CardholderRecord | undefined> {
  const fields = await readBindingCheckFields(ctx, cardNo);
  // Documents are compared in upper case (passports, the X of a resident id), as the form sends them.
  return fields === undefined ? undefined : { ...fields, documentNumber: fields.documentNumber.toUpperCase() };
}

/** What can be refused before the password is checked (and counted). */
function checkBeforePassword(form: BindingForm, card: CardholderRecord, cardNo: string, userId: string): void {
  if ((form.bindingType === 'student' ? 'S' : 'T') !== card.holderType) {
    throw new FailedPreconditionError(`binding type ${form.bindingType} does not match the card's holder type`, {
      reason: 'BINDING_TYPE_MISMATCH',
      zh:
        form.bindingType === 'student' ? '该学号/工号登记为教职工，请选择“教职工”绑定类型' : '该学号/工号登记为学生，请选择“学生”绑定类型',
      field: 'bindingType',
    });
  }
  const refusal = statusRefusal(card.status, 'it cannot be bound');
  if (refusal !== undefined) throw refusal;
  if (!card.synced)
    throw new FailedPreconditionError(
      'the physical card has not been tapped on any terminal since migration (not synced); tap it once, then bind',
      NOT_SYNCED,
    );
  if (card.boundUser !== undefined && card.boundUser !== userId) {
    const err = bindingRefusal('bound_to_other', cardNo);
    if (err !== undefined) throw err;
  }
}

/** After the password: the document and phone must be the ones on the card's record. */
function checkIdentityDocuments(form: BindingForm, card: CardholderRecord): void {
  if ((form.documentType === 'resident_id' ? 'R' : 'P') !== card.documentType || form.documentNumber !== card.documentNumber) {
    throw new FailedPreconditionError('the document type or number does not match the cardholder record', {
      reason: 'DOCUMENT_MISMATCH',
      zh: '证件类型或证件号码与校园卡登记信息不一致，请核对；信息有误请与校园卡服务中心联系',
      field: 'documentNumber',
    });
  }
  if (form.phone !== card.phone) {
    throw new FailedPreconditionError('the phone number does not match the cardholder record', {
      reason: 'PHONE_MISMATCH',
      zh: '手机号与校园卡登记信息不一致，请核对；信息有误请与校园卡服务中心联系',
      field: 'phone',
    });
  }
}

export interface BindingResult {
  readonly cardNo: string;
  /** True when the user already had this very card bound (nothing changed). */
  readonly alreadyBound: boolean;
}

export type BindingFormInput = Partial<Record<keyof BindingForm, unknown>>;

/**
 * Binds the card of the form's student/staff number to `userId`. Every attempt goes to the operator
 * log with its outcome, a malformed form too (never the password, document or phone).
 */
export async function bindEcard(ctx: SwitchContext, userId: string, input: BindingFormInput): Promise<BindingResult> {
  checkUserId(userId);
  let cardNo = '';
  const person = typeof input.personNumber === 'string' ? input.personNumber.slice(0, 20) : '';
  try {
    const form = checkBindingForm(input);
    const result = await withUserLock(ctx, userId, async () => {
      cardNo = (await ctx.cards.cardForPersonNumber(form.personNumber)) ?? '';
      if (cardNo === '') {
        throw new NotFoundError(`no card for student/staff number ${form.personNumber}`, {
          reason: 'CARD_NOT_FOUND',
          zh: '未找到该学号/工号对应的校园卡，请核对',
          field: 'personNumber',
        });
      }
      return bindLocked(ctx, userId, cardNo, form);
    });
    await recordAttempt(ctx, 'ecard-bind', userId, { card: cardNo, person, result: 'ok' });
    return result;
  } catch (err) {
    await recordAttempt(ctx, 'ecard-bind', userId, { card: cardNo, person, result: outcomeOf(err) }).catch(() => undefined);
    throw err;
  }
}

async function bindLocked(ctx: SwitchContext, userId: string, cardNo: string, form: BindingForm): Promise<BindingResult> {
  const current = await boundCardOf(ctx, userId);
  if (current !== '' && current !== cardNo) {
    throw new AlreadyExistsError(`user already has card ${current} bound; unbind it first`, {
      reason: 'USER_ALREADY_BOUND',
      zh: '您已绑定另一张校园卡，请先在个人中心解绑',
    });
  }
  const card = await cardholderRecord(ctx, cardNo);
  if (card === undefined) throw bindingRefusal('unknown_card', cardNo) as Error;
  checkBeforePassword(form, card, cardNo, userId);
  await requireCardPassword(ctx, cardNo, form.password);
  checkIdentityDocuments(form, card);
  const bound = await ctx.ledger.ecardBinding('bind', cardNo, userId);
  const refusal = bindingRefusal(bound.code, cardNo);
  if (refusal !== undefined) throw refusal;
  await writeUserRecord(ctx, userId, cardNo, ctx.now());
  await releasePayerRecords(ctx, cardNo, bound.endedPayers);
  return { cardNo, alreadyBound: current === cardNo };
}

/**
 * The records of the payers ecard-binding.lua ended on the card's side. The binding or unbinding is done
 * by then (and the payers count no more), so a failure here is logged, not answered: a record left over
 * is no binding, and the payer's next binding takes it over.
 */
async function releasePayerRecords(
  ctx: SwitchContext,
  cardNo: string,
  endedPayers: Readonly<Partial<Record<PayerChannel, string>>>,
): Promise<void> {
  if (endedPayers.alipay === undefined && endedPayers.wechat === undefined) return;
  await releaseEndedPayers(ctx, cardNo, endedPayers).catch((err: unknown) =>
    ctx.log.warn({ err, card: cardNo }, 'payer records of an ended e-card binding not released; their next binding takes them over'),
  );
}

/**
 * Ends the user's binding (password required): every QR code of it dies at once (the epoch moves on),
 * the card's event stream starts afresh, and the card's Alipay / WeChat payers (bound by this holder)
 * end in the same script, so the holder's payment codes stop paying from the card. The caller ends the
 * user's sessions.
 */
export async function unbindEcard(ctx: SwitchContext, userId: string, password: string): Promise<{ cardNo: string }> {
  checkUserId(userId);
  let cardNo = '';
  try {
    await withUserLock(ctx, userId, async () => {
      cardNo = await boundCardOf(ctx, userId);
      if (cardNo === '') throw new PermissionDeniedError('this user has no card bound', NOT_BOUND);
      await requireCardPassword(ctx, cardNo, password);
      const unbound = await ctx.ledger.ecardBinding('unbind', cardNo, userId);
      const refusal = bindingRefusal(unbound.code, cardNo);
      if (refusal !== undefined) throw refusal;
      await deleteUserRecord(ctx, userId);
      await releasePayerRecords(ctx, cardNo, unbound.endedPayers);
    });
    await recordAttempt(ctx, 'ecard-unbind', userId, { card: cardNo, result: 'ok' });
    return { cardNo };
  } catch (err) {
    await recordAttempt(ctx, 'ecard-unbind', userId, { card: cardNo, result: outcomeOf(err) }).catch(() => undefined);
    throw err;
  }
}

// ---- the card as the phone shows it ------------------------------------------------------------

export interface EcardSummary {
  readonly cardNumber: string;
  readonly maskedName: string;
  readonly holderType: 'student' | 'staff' | 'unknown';
  readonly status: CardStatusCode;
  readonly balanceFen: number;
  readonly smallWalletFen: number;
  readonly synced: boolean;
  /** The password is still the initial one: the page asks the holder to change it. */
  readonly initialPassword: boolean;
  readonly binding: { readonly userId: string; readonly boundAtMs: number };
  /** The card's payers of the third-party channels (核身状态: 绑定 / 未绑定), domain/channel-binding.ts. */
  readonly channels: Readonly<Record<PayerChannel, ChannelBindingState>>;
}

export type ChannelBindingState = 'bound' | 'unbound';

/** The bound card of `userId` in one read; refused when the card is no longer bound to the user. */
export async function ecardSummary(ctx: SwitchContext, userId: string, cardNo: string): Promise<EcardSummary> {
  const card = await readEcardCardFields(ctx, cardNo);
  if (card.boundUser !== userId) throw new PermissionDeniedError(`card ${cardNo} is not bound to this user`, NOT_BOUND);
  return {
    cardNumber: cardNo,
    maskedName: maskName(card.name),
    holderType: card.holderType === 'S' ? 'student' : card.holderType === 'T' ? 'staff' : 'unknown',
    status: card.status ?? 'active',
    balanceFen: card.balanceFen,
    smallWalletFen: card.smallWalletFen,
    synced: card.synced,
    initialPassword: card.initialPassword,
    binding: { userId, boundAtMs: card.boundAtMs },
    channels: await channelBindingStates(ctx, cardNo),
  };
}

/** 绑定 / 未绑定 per channel (a binding counts only when both its sides name each other: channel-payers.ts). */
async function channelBindingStates(ctx: SwitchContext, cardNo: string): Promise<Readonly<Record<PayerChannel, ChannelBindingState>>> {
  const payers = await channelPayersOfCard(ctx, cardNo);
  return { alipay: payers.alipay === undefined ? 'unbound' : 'bound', wechat: payers.wechat === undefined ? 'unbound' : 'bound' };
}

/** Throws unless `cardNo` is bound to `userId` now. */
export async function requireBoundCard(ctx: SwitchContext, userId: string, cardNo: string): Promise<void> {
  if (cardNo === '' || (await accountBoundUser(ctx, cardNo)) !== userId) {
    throw new PermissionDeniedError('no card is bound to this user', NOT_BOUND);
  }
}

export interface IssuedCampusQr {
  readonly code: string;
  /** The code's single-use id: a live `payment` event with this `qrCodeId` means a POS took it. */
  readonly codeId: string;
  readonly issuedAtMs: number;
  /** The code is refused after this (the page shows a new one well before). */
  readonly expiresAtMs: number;
  /** When the page should show a new code (the guide: every 30 s). */
  readonly refreshAtMs: number;
}

/** A new campus QR code for the bound card: only for an active, synced card bound to this user. */
export async function issueCampusQr(ctx: SwitchContext, userId: string, cardNo: string): Promise<IssuedCampusQr> {
  const card = await readQrIssueFields(ctx, cardNo);
  if (card.boundUser !== userId) throw new PermissionDeniedError(`card ${cardNo} is not bound to this user`, NOT_BOUND);
  const refusal = statusRefusal(card.status, 'no campus QR code is issued');
  if (refusal !== undefined) throw refusal;
  if (!card.synced) throw new FailedPreconditionError('the card (a replacement card?) has not been tapped on any terminal yet', NOT_SYNCED);
  const nowMs = ctx.now();
  const codec = ctx.campusQr;
  const code = codec.issue(cardNo, card.qrEpoch, nowMs);
  const issuedAtMs = Math.floor(nowMs / 1000) * 1000;
  const validMs = ctx.config.campusQr.validSec * 1000;
  // A new code every 30 s (the guide), and always well before this one expires when codes live shorter.
  const refreshAtMs = nowMs + Math.min(CAMPUS_QR_REFRESH_MS, Math.floor(validMs / 2));
  return { code, codeId: codec.open(code)?.codeId ?? '', issuedAtMs, expiresAtMs: issuedAtMs + validMs, refreshAtMs };
}

// ---- fees from the phone -----------------------------------------------------------------------

/**
 * The request key of a fee paid from the phone: the card's own "terminal" and a request id the page
 * chooses (1 .. 2^53-1, a retry sends the same one). Journal and statement show it as the e-card.
 */
export function ecardTerminalId(cardNo: string): string {
  return `EC-${cardNo}`;
}

export interface PhoneFeeRequest {
  readonly requestId: number;
  readonly target: UtilityTarget;
  readonly amountFen: number;
  readonly password: string;
}

/** Pays a network or electricity fee from the bound card (password required); a retry replays its answer. */
export async function payFeeFromPhone(ctx: SwitchContext, userId: string, cardNo: string, request: PhoneFeeRequest): Promise<FeeAnswer> {
  if (!Number.isSafeInteger(request.requestId) || request.requestId < 1) {
    throw new InvalidArgumentError(`requestId must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}`, {
      reason: 'INVALID_REQUEST_ID',
      zh: '请求编号无效，请刷新页面后重试',
      field: 'requestId',
    });
  }
  checkFeeAmount(request.amountFen);
  await requireBoundCard(ctx, userId, cardNo);
  await requireCardPassword(ctx, cardNo, request.password);
  return payUtilityFee(ctx, {
    cardNo,
    terminalId: ecardTerminalId(cardNo),
    sequence: request.requestId,
    target: request.target,
    amountFen: request.amountFen,
  });
}
