--[[
  The ledger's side of a third-party (Alipay / WeChat) code payment, in the payer's card's shard: a
  journal entry and a statement line of the card, exactly once per payment ('pay'), and once more if the
  payment is reversed afterwards ('unpay'); and the holder's live event of the outcome (approved,
  reversed, or 'decline': an event only). The money came from outside and went to the merchant
  (x:ch:<CHANNEL> -> m:<merchant>, and back for a reversal): the account's balance, wallet and version
  do not move; `b` and `v` of the entry are the account's unchanged ones (the audit skips entries that
  touch no account: they are outside to outside, net zero).

  Card state: 'pay' is where the sale is taken, so the card's state is checked here, atomically with
  the entry: a lost (L), frozen (F) or cancelled (C) card's holder may not pay at a campus POS with
  their bound channel either (the same rule as the campus QR code: the account is stopped, whatever
  the credential). Nothing is journalled then, and domain/channel-payment.ts gives the money back.

  Payer binding: the domain looked the payer's card up before this call (both sides of the binding,
  domain/channel-payers.ts), but the binding may have ended since: the payer's channel unbinding, an
  e-card unbinding or a new holder's binding (ecard-binding.lua), each of which ends the card's side
  (`cpalipay` / `cpwechat`) in its own script. So 'pay' takes the sale only while the card's side
  still names the payer the sale was authorised for (ARGV[13]); otherwise nothing is journalled (12)
  and the domain declines the payment PAYER_NOT_BOUND and gives the money back. A binding is the pair
  (card, payer): the same payer bound again to the same card is the same binding, and no one but the
  payer can bind their own payer id.

  Refunds (channel-refund.lua) keep `refd` (refunded) and `rsv` (a refund under way) on the same
  paidKey: a reversal after a partial refund gives back only what is left (`amt - refd`), and waits
  (refunds_pending) while a refund is under way, so the two can never together give back more than paid.

  KEYS[1] paidKey       {L:s}:cpaid:<outTradeNo>  hash: tx (the payment's entry id), rtx (the reversal's),
                        card, amt, ct, mp (merchant party), refd, rsv, dev (the decline event's id)
  KEYS[2] accountKey    {L:s}:acct:<card>
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>
  KEYS[5] eventsKey     {L:s}:ev:<card>

  ARGV[1] op 'pay' | 'unpay' | 'decline'   ARGV[2] cardNo   ARGV[3] channel   ARGV[4] outTradeNo
  ARGV[5] channelTxnId (decline: the outTradeNo)   ARGV[6] amountFen   ARGV[7] merchantParty
  ARGV[8] terminalId   ARGV[9] sequence   ARGV[10] nowMs   ARGV[11] ttlSec (how long the record lasts)
  ARGV[12] why (decline: the decline reason, e.g. INSUFFICIENT_FUNDS; '' otherwise)
  ARGV[13] payerId (pay: the payer the sale was authorised for, which the card must still name for
           this channel; '' for unpay and decline)
  ARGV[14] eventsChannel   ARGV[15] eventTtlSec (a bound e-card's page is told; includes/event.lua
           takes them as the last two)

  Returns {code, entryId, amountFen}:
    1 journalled now   2 already journalled (the first entry's id)   3 (unpay) the payment was never journalled
    5 unknown account   6 card lost   7 card frozen   8 card cancelled (pay: nothing changed)
   12 (pay) the card no longer names this payer for the channel: its binding ended (nothing changed)
    9 (unpay) a refund of this payment is under way: try again once it is decided (nothing changed)
   10 (unpay) refunded in full already: nothing left to give back (nothing changed)
   11 (decline) the holder's event written (or written before; none for an unbound e-card)
  amountFen: what the entry moved (unpay: what was left after refunds), 0 when nothing was journalled.

  A malformed ARGV (count or format) is answered with the error reply "ERR channel-paid: ..." before any
  key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'channel-paid'
local ANSWER_JOURNALLED = 1
local ANSWER_ALREADY_JOURNALLED = 2
local ANSWER_NOT_PAID = 3
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_LOST = 6
local ANSWER_CARD_FROZEN = 7
local ANSWER_CARD_CANCELLED = 8
local ANSWER_REFUNDS_PENDING = 9
local ANSWER_FULLY_REFUNDED = 10
local ANSWER_DECLINE_NOTED = 11
local ANSWER_PAYER_NOT_BOUND = 12

local rcall = redis.call
local paidKey = KEYS[1]
local accountKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]
local op = ARGV[1]

-- @include argv
-- @include answer
-- @include event

local badArgv = argvCount(#ARGV == 15, '15') or argvOneOf(1, 'op', 'pay', 'unpay', 'decline') or argvId(2, 'cardNo')
  or argvOneOf(3, 'channel', 'alipay', 'wechat') or argvId(4, 'outTradeNo') or argvId(5, 'channelTxnId')
  or argvInteger(6, 'amountFen', 1) or argvId(7, 'merchantParty') or argvId(8, 'terminalId') or argvInteger(9, 'sequence', 1)
  or argvInteger(10, 'nowMs', 0) or argvInteger(11, 'ttlSec', 1) or argvId(14, 'eventsChannel') or argvInteger(15, 'eventTtlSec', 1)
if badArgv then return badArgv end

local cardNo = ARGV[2]
local channel = ARGV[3]
local channelParty = 'x:ch:' .. string.upper(channel)
local amountFen = tonumber(ARGV[6])
local merchantParty = ARGV[7]
local nowMs = ARGV[10]
local ttlSec = tonumber(ARGV[11])
local paid = rcall('HMGET', paidKey, 'tx', 'rtx', 'amt', 'refd', 'rsv', 'dev')
local account = rcall('HMGET', accountKey, 'bal', 'ver', 'st', 'eu', 'cp' .. channel)
if not account[1] then return { ANSWER_UNKNOWN_CARD, '', 0 } end
local balFen = tonumber(account[1])
local version = tonumber(account[2] or '1')

if op == 'decline' then
  if paid[6] or paid[1] then return { ANSWER_DECLINE_NOTED, paid[6] or '', 0 } end
  local fields = { 'k', 'decl', 'a', amountFen, 'b', balFen, 'r', ARGV[12], 'tm', ARGV[8], 'm', merchantParty, 'cr', channel,
    'tx', '', 'ts', nowMs }
  emitTrailingEvent(account[4], cardNo, fields, accountKey)
  rcall('HSET', paidKey, 'dev', nowMs)
  rcall('EXPIRE', paidKey, ttlSec)
  return { ANSWER_DECLINE_NOTED, '', 0 }
end

if op == 'pay' then
  if paid[1] then return { ANSWER_ALREADY_JOURNALLED, paid[1], tonumber(paid[3]) } end
  local status = account[3]
  if status == 'L' then return { ANSWER_CARD_LOST, '', 0 } end
  if status == 'F' then return { ANSWER_CARD_FROZEN, '', 0 } end
  if status == 'C' then return { ANSWER_CARD_CANCELLED, '', 0 } end
  -- The binding the sale was authorised under must still stand ('' names no payer: never bound).
  if account[5] ~= ARGV[13] then return { ANSWER_PAYER_NOT_BOUND, '', 0 } end
else
  if not paid[1] then return { ANSWER_NOT_PAID, '', 0 } end
  if paid[2] then return { ANSWER_ALREADY_JOURNALLED, paid[2], 0 } end
  if tonumber(paid[5] or '0') > 0 then return { ANSWER_REFUNDS_PENDING, '', 0 } end
  amountFen = tonumber(paid[3]) - tonumber(paid[4] or '0')
  if amountFen < 0 then return redis.error_reply('INVARIANT refunded more than paid on ' .. paidKey) end
  if amountFen == 0 then return { ANSWER_FULLY_REFUNDED, '', 0 } end
end

local fromParty, toParty, signedFen, kind, eventKind = channelParty, merchantParty, -amountFen, 'cpay', 'pay'
if op == 'unpay' then fromParty, toParty, signedFen, kind, eventKind = merchantParty, channelParty, amountFen, 'cprev', 'rev' end
local txnId = appendJournal(journalKey, kind, cardNo, digits(amountFen), fromParty, toParty, digits(balFen), digits(version), ARGV[8], ARGV[9], nowMs,
  { 'ot', ARGV[4], 'ct', ARGV[5] })
appendStatement(statementKey, tonumber(nowMs), txnId, kind, digits(signedFen), digits(balFen), ARGV[8], ARGV[9])
if op == 'pay' then
  rcall('HSET', paidKey, 'tx', txnId, 'card', cardNo, 'amt', ARGV[6], 'ct', ARGV[5], 'mp', merchantParty)
  rcall('EXPIRE', paidKey, ttlSec)
else
  rcall('HSET', paidKey, 'rtx', txnId)
end
emitTrailingEvent(account[4], cardNo, { 'k', eventKind, 'a', amountFen, 'b', balFen, 'r', '1', 'tm', ARGV[8], 'm', merchantParty,
  'cr', channel, 'tx', txnId, 'ts', nowMs }, accountKey)
return { ANSWER_JOURNALLED, txnId, amountFen }
