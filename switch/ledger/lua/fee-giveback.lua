--[[
  Give a utility fee back to the card account, exactly once, after the provider refused the order or
  confirmed it void (domain/fees.ts never calls this while the provider might still deliver). No card
  status blocks it: the money was the cardholder's a moment ago.

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] requestKey    {L:s}:req:<term>:<seq>
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>
  KEYS[5] pendingKey    {L:s}:feepend

  ARGV[1] cardNo
  ARGV[2] fingerprint   must be the debit's
  ARGV[3] terminalId    (journal `tm`)
  ARGV[4] sequence      (journal `sq`)
  ARGV[5] reason        why the provider did not deliver (short text, no '|')
  ARGV[6] nowMs
  Last: KEYS[6] eventsKey {L:s}:ev:<card>, ARGV[7] eventsChannel, ARGV[8] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  Returns one string, the final answer in fee-debit.lua's format:
    "11|<balanceAfterFen>|<giveBackTxnId>|<decidedAtMs>|<reason>"   given back now or before (recorded)
    or the stored answer when the request is already final otherwise (1 delivered, 2/3/4/9 declined):
    nothing is given back then.
  Or a number (nothing changed):
    -1 the record is for a different request
    -2 no such request (never debited, or expired)

  A malformed ARGV (count or format) is answered with the error reply "ERR fee-giveback: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'fee-giveback'
local ANSWER_GIVEN_BACK = 11
local REFUSED_OTHER_REQUEST = -1
local REFUSED_NO_RECORD = -2

local rcall = redis.call
local accountKey = KEYS[1]
local requestKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]
local pendingKey = KEYS[5]

local cardNo = ARGV[1]
local fingerprint = ARGV[2]
local terminalId = ARGV[3]
local sequence = ARGV[4]
local reason = ARGV[5]
local nowMs = ARGV[6]

-- @include answer
-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 8, '8')
  or argvId(1, 'cardNo') or argvId(2, 'fingerprint') or argvId(3, 'terminalId') or argvInteger(4, 'sequence', 1)
  or argvInteger(6, 'nowMs', 0) or argvId(7, 'eventsChannel') or argvInteger(8, 'eventTtlSec', 1)
if badArgv then return badArgv end

local request = requestFields(requestKey, 'pfp', 'pans', 'pst', 'amt', 'card', 'up')
if not request[1] then return REFUSED_NO_RECORD end
if request[1] ~= fingerprint then return REFUSED_OTHER_REQUEST end
if request[3] ~= 'P' then return request[2] end
if request[5] ~= cardNo then return redis.error_reply('INVARIANT fee record ' .. requestKey .. ' is not for card ' .. cardNo) end

local amountFen = tonumber(request[4])
if amountFen == nil or amountFen <= 0 then return redis.error_reply('INVARIANT fee record ' .. requestKey .. ' has no amount') end
if rcall('HEXISTS', accountKey, 'bal') == 0 then return redis.error_reply('INVARIANT account of ' .. cardNo .. ' vanished') end
local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', amountFen)
if balanceAfterFen < amountFen then
  return redis.error_reply('INVARIANT balance negative before fee give-back to ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
local entryId = appendJournal(journalKey, 'feeback', cardNo, digits(amountFen), request[6], 'a:' .. cardNo,
  digits(balanceAfterFen), digits(version), terminalId, sequence, nowMs)
appendStatement(statementKey, nowMs, entryId, 'feeback', digits(amountFen), digits(balanceAfterFen), terminalId, sequence)
emitTrailingEvent(rcall('HGET', accountKey, 'eu'), cardNo, { 'k', 'feeback', 'a', amountFen, 'b', balanceAfterFen, 'm', request[6],
  'tm', terminalId, 'why', reason, 'tx', entryId, 'ts', nowMs })

local answer = joinAnswer({ ANSWER_GIVEN_BACK, balanceAfterFen, entryId, nowMs, reason })
rcall('HSET', requestKey, 'pst', 'B', 'pans', answer)
rcall('ZREM', pendingKey, terminalId .. '|' .. sequence .. '|' .. cardNo)
-- Final now: the record expires like any other request record.
rcall('EXPIRE', requestKey, tonumber(rcall('HGET', requestKey, 'ttl') or '604800'))
return answer
