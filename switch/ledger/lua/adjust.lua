--[[
  An operator's correction of a card balance, up or down, with a written reason, exactly once per
  adjustment id. No card status blocks it: the card office also uses it to pay out the balance of a
  lost, frozen or cancelled card. A debit never takes the balance below zero.

  KEYS[1] accountKey     {L:s}:acct:<card>
  KEYS[2] adjustmentKey  {L:s}:adj:<adjustmentId>   hash: fp fingerprint, ans answer, card, by, r
  KEYS[3] journalKey     {L:s}:journal
  KEYS[4] statementKey   {L:s}:stmt:<card>

  ARGV[1] cardNo
  ARGV[2] signedAmountFen  integer, non-zero: > 0 credits (x:adj -> a:<card>), < 0 debits (a:<card> -> x:adj)
  ARGV[3] fingerprint      what the adjustment was (card, amount, reason)
  ARGV[4] adjustmentId     (journal `sq`)
  ARGV[5] operator         (journal `tm`)
  ARGV[6] reason           1-200 characters (journal extra field `r`)
  ARGV[7] nowMs
  ARGV[8] recordTtlSec

  Returns one string "<code>|<balanceAfterFen>|<txnId>|<decidedAtMs>":
    code 1 adjusted (recorded: a retry returns this string unchanged)
         2 the debit would take the balance below zero (not recorded, nothing changed)
         5 unknown account (not recorded, nothing changed)
  Or a number (nothing changed):
    -1 the adjustment id was used before for a different card, amount or reason

  A malformed ARGV (count or format) is answered with the error reply "ERR adjust: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'adjust'
local ANSWER_ADJUSTED = 1
local ANSWER_BELOW_ZERO = 2
local ANSWER_UNKNOWN_CARD = 5
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local accountKey = KEYS[1]
local adjustmentKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]

local cardNo = ARGV[1]
local signedAmountFen = tonumber(ARGV[2])
local fingerprint = ARGV[3]
local adjustmentId = ARGV[4]
local operator = ARGV[5]
local reason = ARGV[6]
local nowMs = ARGV[7]
local recordTtlSec = tonumber(ARGV[8])

-- @include answer
-- @include argv

local badArgv = argvCount(#ARGV == 8, '8')
  or argvId(1, 'cardNo') or argvNonZeroInteger(2, 'signedAmountFen') or argvId(3, 'fingerprint')
  or argvId(4, 'adjustmentId') or argvId(5, 'operator') or argvId(6, 'reason') or argvInteger(7, 'nowMs', 0)
  or argvInteger(8, 'recordTtlSec', 1)
if badArgv then return badArgv end

local recorded = recordedAnswer(adjustmentKey, fingerprint, 'fp', 'ans')
if recorded then return recorded end
if recorded == false then return REFUSED_KEY_REUSED end

local balanceFen = tonumber(rcall('HGET', accountKey, 'bal'))
if balanceFen == nil then return joinAnswer({ ANSWER_UNKNOWN_CARD, 0, '', nowMs }) end
if balanceFen + signedAmountFen < 0 then return joinAnswer({ ANSWER_BELOW_ZERO, balanceFen, '', nowMs }) end

local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', signedAmountFen)
if balanceAfterFen < 0 then
  return redis.error_reply('INVARIANT balance negative after adjustment of ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
local fromParty, toParty = 'x:adj', 'a:' .. cardNo
if signedAmountFen < 0 then fromParty, toParty = 'a:' .. cardNo, 'x:adj' end
local entryId = appendJournal(journalKey, 'adj', cardNo, digits(math.abs(signedAmountFen)), fromParty, toParty,
  digits(balanceAfterFen), digits(version), operator, adjustmentId, nowMs, { 'r', reason })
appendStatement(statementKey, nowMs, entryId, 'adj', digits(signedAmountFen), digits(balanceAfterFen), operator, adjustmentId)

local answer = joinAnswer({ ANSWER_ADJUSTED, balanceAfterFen, entryId, nowMs })
rcall('HSET', adjustmentKey, 'fp', fingerprint, 'ans', answer, 'card', cardNo, 'by', operator, 'r', reason)
rcall('EXPIRE', adjustmentKey, recordTtlSec)
return answer
