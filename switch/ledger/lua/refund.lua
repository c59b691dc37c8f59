--[[
  Refund all or part of an approved POS payment to the card account, atomically and idempotently
  per refund key (the refunding terminal and its own sequence number). The payment's record keeps
  `refd`, the sum refunded so far, so refunds never exceed the payment; a later reversal of the
  payment must give back only `amt - refd` (reverse.lua has to read `refd` for that).

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] originalKey   {L:s}:req:<origTerm>:<origSeq>   the payment's record (authorize.lua)
  KEYS[3] refundKey     {L:s}:req:<term>:<seq>           this refund's own record
  KEYS[4] journalKey    {L:s}:journal
  KEYS[5] statementKey  {L:s}:stmt:<card>

  ARGV[1] cardNo
  ARGV[2] amountFen       integer > 0
  ARGV[3] fingerprint     what the refund was (card, amount, original payment)
  ARGV[4] terminalId      the refunding terminal (journal `tm`)
  ARGV[5] sequence        its sequence number (journal `sq`)
  ARGV[6] merchantParty   the refunding terminal's merchant, e.g. 'm:canteen-1'; must be the payment's
  ARGV[7] nowMs
  ARGV[8] requestTtlSec
  ARGV[9] originalRef     '<origTerm>:<origSeq>', stored with the refund
  Last: KEYS[6] eventsKey {L:s}:ev:<card>, ARGV[10] eventsChannel, ARGV[11] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  The refund's record uses the payment fields (pfp/pans, pst 'F', amt, card) so that authorize.lua
  refuses the same terminal sequence number for a payment (-1) and reverse.lua finds nothing to reverse.

  Returns one string "<code>|<balanceAfterFen>|<refundableLeftFen>|<txnId>|<decidedAtMs>":
    code 1 refunded (recorded: a retry returns this string unchanged)
    Not recorded, nothing changed:
         2 over the amount still refundable (field 3 says how much is)
         3 no such payment (unknown, expired, or not a payment)
         4 the payment was made with another card
         5 the payment belongs to another merchant
         6 the payment was declined (nothing to refund)
         7 the payment was reversed (nothing to refund)
         8 unknown account
         9 card cancelled
  Or a number (nothing changed):
    -1 this refund key was used before for a different request

  A malformed ARGV (count or format) is answered with the error reply "ERR refund: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'refund'
local ANSWER_REFUNDED = 1
local ANSWER_OVER_REFUNDABLE = 2
local ANSWER_PAYMENT_NOT_FOUND = 3
local ANSWER_OTHER_CARD = 4
local ANSWER_OTHER_MERCHANT = 5
local ANSWER_PAYMENT_DECLINED = 6
local ANSWER_PAYMENT_REVERSED = 7
local ANSWER_UNKNOWN_CARD = 8
local ANSWER_CARD_CANCELLED = 9
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local accountKey = KEYS[1]
local originalKey = KEYS[2]
local refundKey = KEYS[3]
local journalKey = KEYS[4]
local statementKey = KEYS[5]

local cardNo = ARGV[1]
local amountFen = tonumber(ARGV[2])
local fingerprint = ARGV[3]
local terminalId = ARGV[4]
local sequence = ARGV[5]
local merchantParty = ARGV[6]
local nowMs = ARGV[7]
local requestTtlSec = tonumber(ARGV[8])
local originalRef = ARGV[9]

-- @include answer
-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 11, '11')
  or argvId(1, 'cardNo') or argvInteger(2, 'amountFen', 1) or argvId(3, 'fingerprint') or argvId(4, 'terminalId')
  or argvInteger(5, 'sequence', 1) or argvId(6, 'merchantParty') or argvInteger(7, 'nowMs', 0)
  or argvInteger(8, 'requestTtlSec', 1) or argvId(9, 'originalRef') or argvId(10, 'eventsChannel')
  or argvInteger(11, 'eventTtlSec', 1)
if badArgv then return badArgv end
if originalKey == refundKey then return REFUSED_KEY_REUSED end

local recorded, previous = recordedAnswer(refundKey, fingerprint, 'pfp', 'pans', 'rfp')
if recorded then return recorded end
if recorded == false then return REFUSED_KEY_REUSED end
-- A reversal was recorded under this key: the terminal used the sequence number for a payment.
if previous[3] then return REFUSED_KEY_REUSED end

local function refuse(code, balanceFen, leftFen)
  return joinAnswer({ code, balanceFen, leftFen, '', nowMs })
end

local original = requestFields(originalKey, 'pfp', 'pst', 'amt', 'mp', 'card', 'refd')
if not original[1] or string.sub(original[1], 1, 4) ~= 'pay|' then return refuse(ANSWER_PAYMENT_NOT_FOUND, 0, 0) end
if original[5] ~= cardNo then return refuse(ANSWER_OTHER_CARD, 0, 0) end
if original[4] ~= merchantParty then return refuse(ANSWER_OTHER_MERCHANT, 0, 0) end

local account = rcall('HMGET', accountKey, 'bal', 'st', 'eu')
local balanceFen = tonumber(account[1])
if balanceFen == nil then return refuse(ANSWER_UNKNOWN_CARD, 0, 0) end
if original[2] == 'D' then return refuse(ANSWER_PAYMENT_DECLINED, balanceFen, 0) end
if original[2] == 'R' then return refuse(ANSWER_PAYMENT_REVERSED, balanceFen, 0) end
if original[2] ~= 'A' then return redis.error_reply('INVARIANT payment record ' .. originalKey .. ' has state ' .. tostring(original[2])) end

local paidFen = tonumber(original[3])
local refundedFen = tonumber(original[6] or '0')
local leftFen = paidFen - refundedFen
if leftFen < 0 then return redis.error_reply('INVARIANT refunded more than paid on ' .. originalKey) end
if account[2] == 'C' then return refuse(ANSWER_CARD_CANCELLED, balanceFen, leftFen) end
if amountFen > leftFen then return refuse(ANSWER_OVER_REFUNDABLE, balanceFen, leftFen) end

-- The payment's compact record becomes the hash `refd` is kept in, before the first write.
requestAsHash(originalKey)
local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', amountFen)
if balanceAfterFen < amountFen then
  return redis.error_reply('INVARIANT balance negative before refund to ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
rcall('HINCRBY', originalKey, 'refd', amountFen)
local entryId = appendJournal(journalKey, 'ref', cardNo, digits(amountFen), merchantParty, 'a:' .. cardNo,
  digits(balanceAfterFen), digits(version), terminalId, sequence, nowMs)
appendStatement(statementKey, nowMs, entryId, 'ref', digits(amountFen), digits(balanceAfterFen), terminalId, sequence)
emitTrailingEvent(account[3], cardNo, { 'k', 'ref', 'a', amountFen, 'b', balanceAfterFen, 'm', merchantParty, 'tm', terminalId,
  'tx', entryId, 'ts', nowMs })

local answer = joinAnswer({ ANSWER_REFUNDED, balanceAfterFen, leftFen - amountFen, entryId, nowMs })
rcall('HSET', refundKey, 'pfp', fingerprint, 'pans', answer, 'pst', 'F', 'amt', amountFen, 'card', cardNo, 'orig', originalRef)
rcall('EXPIRE', refundKey, requestTtlSec)
return answer
