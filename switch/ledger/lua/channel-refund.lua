--[[
  A merchant's refund (PosService/Refund) of a paid third-party (Alipay / WeChat) code payment, in the
  payer's card's shard. The money goes back through the channel (trade.refund / WeChat refund), so the
  refund has two steps around the channel's call, each atomic here:

    'begin'  checks the payment (paid, not reversed, this card, this merchant) and what is left of it
             (amt - refd - rsv), and reserves the amount (rsv) under the refund's own record, BEFORE the
             channel is called: 300 parallel refunds with one key reserve once, and two refunds with two
             keys can never together pass what was paid.
    'done'   the channel refunded: the journal entry (`cref`, m:<merchant> -> x:ch:<CHANNEL>; the card's
             balance does not move, like cpay), the statement line, the holder's live event; rsv -> refd;
             the answer is recorded so a retry replays it byte for byte.
    'failed' the channel refused for good: the reservation is released and the record removed (a refused
             refund changes nothing; the same key may be sent again).
  An undecided channel answer leaves the record pending (cst P); domain/channel-payment.ts queries the
  channel until it knows, and calls 'done' or 'failed' then.

  The refund's record is the refunding terminal's request key in the card's shard, with the payment
  fields (pfp, pst 'F', amt, card) like refund.lua's, so authorize.lua refuses the sequence number for a
  payment and reverse.lua finds nothing to reverse under it.

  KEYS[1] paidKey      {L:s}:cpaid:<outTradeNo>     channel-paid.lua's record: tx, rtx, card, amt, mp, refd, rsv,
                       and 'r|<term>|<seq>' -> amount for each refund holding a reservation ('begin' writes it,
                       'done' and 'failed' remove it): a reversal kept waiting by a reservation finds its refund
  KEYS[2] refundKey    {L:s}:req:<term>:<seq>       this refund: pfp, pans, pst F, amt, card, orig, cst P|S,
                       ot, orn (out_refund_no), ch (channel), mp (merchant party), at (begun ms),
                       crid (the channel's refund id)
  KEYS[3] accountKey   {L:s}:acct:<card>
  KEYS[4] journalKey   {L:s}:journal
  KEYS[5] statementKey {L:s}:stmt:<card>
  KEYS[6] eventsKey    {L:s}:ev:<card>

  ARGV[1] op 'begin' | 'done' | 'failed'   ARGV[2] cardNo   ARGV[3] amountFen   ARGV[4] fingerprint
  ARGV[5] terminalId   ARGV[6] sequence   ARGV[7] merchantParty   ARGV[8] outTradeNo (the payment's)
  ARGV[9] outRefundNo   ARGV[10] channel   ARGV[11] channelRefundId ('' for begin and failed)   ARGV[12] nowMs
  ARGV[13] requestTtlSec   ARGV[14] originalRef '<origTerm>:<origSeq>'   ARGV[15] eventsChannel   ARGV[16] eventTtlSec

  Returns one string "<code>|<balanceAfterFen>|<refundableLeftFen>|<txnId>|<decidedAtMs>":
    1 refunded (done now, or recorded before: a retry returns the first answer unchanged)
   10 begun (reserved now: call the channel)   11 pending (reserved before, the channel's answer is awaited)
   12 released ('failed': the reservation is given back, the record removed; or there was none)
    Not recorded, nothing changed:
    2 over the amount still refundable (field 3 says how much is)
    3 no such payment (never paid here, declined, or older than the records are kept)
    4 the payment was made with another card   5 the payment belongs to another merchant
    7 the payment was reversed (its money went back to the payer already)   8 unknown account
  Or a number (nothing changed): -1 this refund key was used before for a different request.

  A malformed ARGV (count or format) is answered with the error reply "ERR channel-refund: ..." before
  any key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'channel-refund'
local ANSWER_REFUNDED = 1
local ANSWER_OVER_REFUNDABLE = 2
local ANSWER_PAYMENT_NOT_FOUND = 3
local ANSWER_OTHER_CARD = 4
local ANSWER_OTHER_MERCHANT = 5
local ANSWER_PAYMENT_REVERSED = 7
local ANSWER_UNKNOWN_CARD = 8
local ANSWER_BEGUN = 10
local ANSWER_PENDING = 11
local ANSWER_RELEASED = 12
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local paidKey = KEYS[1]
local refundKey = KEYS[2]
local accountKey = KEYS[3]
local journalKey = KEYS[4]
local statementKey = KEYS[5]
local op = ARGV[1]

-- @include answer
-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 16, '16') or argvOneOf(1, 'op', 'begin', 'done', 'failed') or argvId(2, 'cardNo')
  or argvInteger(3, 'amountFen', 1) or argvId(4, 'fingerprint') or argvId(5, 'terminalId') or argvInteger(6, 'sequence', 1)
  or argvId(7, 'merchantParty') or argvId(8, 'outTradeNo') or argvId(9, 'outRefundNo')
  or argvOneOf(10, 'channel', 'alipay', 'wechat') or argvInteger(12, 'nowMs', 0) or argvInteger(13, 'requestTtlSec', 1)
  or argvId(14, 'originalRef') or argvId(15, 'eventsChannel') or argvInteger(16, 'eventTtlSec', 1)
if badArgv then return badArgv end

local cardNo = ARGV[2]
local amountFen = tonumber(ARGV[3])
local fingerprint = ARGV[4]
local nowMs = ARGV[12]
-- Names this refund's reservation on the payment (channel-payments.ts pendingRefundsOfPayment reads it).
local reservationField = 'r|' .. ARGV[5] .. '|' .. ARGV[6]

local function answer(code, balanceFen, leftFen, txnId, atMs)
  return joinAnswer({ code, balanceFen, leftFen, txnId, atMs })
end

-- The refund's record: another request's (another fingerprint, or a reversal's `rfp`) refuses; this one's
-- answers `pans` once decided, or is pending (pfp without pans: HMGET's missing fields are false in Lua).
local previous = requestFields(refundKey, 'pfp', 'pans', 'rfp', 'cst', 'at')
if previous[3] or (previous[1] and previous[1] ~= fingerprint) then return REFUSED_KEY_REUSED end
local recorded = previous[1] and previous[2]
local paid = rcall('HMGET', paidKey, 'tx', 'rtx', 'card', 'amt', 'mp', 'refd', 'rsv')
local paidFen = tonumber(paid[4] or '0')
local refundedFen = tonumber(paid[6] or '0')
local reservedFen = tonumber(paid[7] or '0')

if op == 'begin' then
  if recorded then return recorded end
  if previous[1] then return answer(ANSWER_PENDING, 0, paidFen - refundedFen - reservedFen, '', previous[5] or nowMs) end
  if not paid[1] then return answer(ANSWER_PAYMENT_NOT_FOUND, 0, 0, '', nowMs) end
  if paid[3] ~= cardNo then return answer(ANSWER_OTHER_CARD, 0, 0, '', nowMs) end
  if paid[5] ~= ARGV[7] then return answer(ANSWER_OTHER_MERCHANT, 0, 0, '', nowMs) end
  local balance = rcall('HGET', accountKey, 'bal')
  if not balance then return answer(ANSWER_UNKNOWN_CARD, 0, 0, '', nowMs) end
  if paid[2] then return answer(ANSWER_PAYMENT_REVERSED, balance, 0, '', nowMs) end
  local leftFen = paidFen - refundedFen - reservedFen
  if leftFen < 0 then return redis.error_reply('INVARIANT refunds exceed the payment on ' .. paidKey) end
  if amountFen > leftFen then return answer(ANSWER_OVER_REFUNDABLE, balance, leftFen, '', nowMs) end
  rcall('HINCRBY', paidKey, 'rsv', amountFen)
  rcall('HSET', paidKey, reservationField, amountFen)
  rcall('HSET', refundKey, 'pfp', fingerprint, 'pst', 'F', 'amt', amountFen, 'card', cardNo, 'orig', ARGV[14], 'cst', 'P',
    'ot', ARGV[8], 'orn', ARGV[9], 'ch', ARGV[10], 'mp', ARGV[7], 'at', nowMs)
  rcall('EXPIRE', refundKey, tonumber(ARGV[13]))
  return answer(ANSWER_BEGUN, balance, leftFen - amountFen, '', nowMs)
end

-- 'done' and 'failed' decide a reservation made by 'begin' (the same fingerprint); a decided one is replayed.
if recorded then return recorded end
if not previous[1] then return answer(ANSWER_RELEASED, 0, paidFen - refundedFen - reservedFen, '', nowMs) end
if reservedFen < amountFen then return redis.error_reply('INVARIANT refund ' .. refundKey .. ' is not reserved on ' .. paidKey) end
rcall('HDEL', paidKey, reservationField)
if op == 'failed' then
  rcall('HINCRBY', paidKey, 'rsv', -amountFen)
  rcall('DEL', refundKey)
  return answer(ANSWER_RELEASED, 0, paidFen - refundedFen - reservedFen + amountFen, '', nowMs)
end

local account = rcall('HMGET', accountKey, 'bal', 'ver', 'eu')
if not account[1] then return redis.error_reply('INVARIANT refund ' .. refundKey .. ' of an account that is gone') end
local balanceFen = tonumber(account[1])
local merchantParty = ARGV[7]
local channelParty = 'x:ch:' .. string.upper(ARGV[10])
rcall('HINCRBY', paidKey, 'rsv', -amountFen)
rcall('HINCRBY', paidKey, 'refd', amountFen)
local entryId = appendJournal(journalKey, 'cref', cardNo, digits(amountFen), merchantParty, channelParty, digits(balanceFen),
  digits(tonumber(account[2] or '1')), ARGV[5], ARGV[6], nowMs, { 'ot', ARGV[8], 'ct', ARGV[11], 'or', ARGV[9] })
appendStatement(statementKey, tonumber(nowMs), entryId, 'cref', digits(amountFen), digits(balanceFen), ARGV[5], ARGV[6])
emitTrailingEvent(account[3], cardNo, { 'k', 'ref', 'a', amountFen, 'b', balanceFen, 'm', merchantParty, 'tm', ARGV[5],
  'cr', ARGV[10], 'tx', entryId, 'ts', nowMs }, accountKey)
local leftFen = paidFen - refundedFen - reservedFen
local decided = answer(ANSWER_REFUNDED, balanceFen, leftFen, entryId, nowMs)
rcall('HSET', refundKey, 'pans', decided, 'cst', 'S', 'crid', ARGV[11])
return decided
