--[[
  Reverse one POS payment identified by (terminal, sequence), atomically and idempotently.
  A reversal that arrives before its payment leaves a tombstone; authorize.lua then declines the payment.

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] requestKey    {L:s}:req:<term>:<seq>   the payment's request record
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>

  ARGV[1] cardNo
  ARGV[2] amountFen       must equal the payment's amount
  ARGV[3] fingerprint     what the reversal was (card, amount)
  ARGV[4] terminalId
  ARGV[5] sequence        the payment's sequence number
  ARGV[6] nowMs
  ARGV[7] requestTtlSec
  Last: KEYS[5] eventsKey {L:s}:ev:<card>, ARGV[8] eventsChannel, ARGV[9] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  Returns one string "<code>|<balanceAfterFen>|<decidedAtMs>":
    code 1 reversed (what was not yet refunded is back on the account)
         2 nothing to reverse (payment declined, or already refunded in full)
         3 tombstoned (payment not seen yet)
  Or a number (nothing changed):
    -1 this reversal key was used before for a different reversal
    -2 the amount differs from the payment's amount
    -3 the payment belongs to another card
    -4 the request is a small-wallet move (water debit / settlement), which is never reversed
]]
local rcall = redis.call
local accountKey = KEYS[1]
local requestKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]

local cardNo = ARGV[1]
local amountFen = tonumber(ARGV[2])
local fingerprint = ARGV[3]
local terminalId = ARGV[4]
local sequence = ARGV[5]
local nowMs = ARGV[6]
local requestTtlSec = tonumber(ARGV[7])

-- @include answer
-- @include event

local request = rcall('HMGET', requestKey, 'rfp', 'rans', 'pfp', 'pst', 'amt', 'mp', 'card', 'refd')
if request[1] then
  if request[1] == fingerprint then return request[2] end
  return -1
end

local account = rcall('HMGET', accountKey, 'bal', 'eu')
local balanceFen = tonumber(account[1] or '0')
local code = 3
if request[3] then
  if request[7] ~= cardNo then return -3 end
  if request[4] == 'W' then return -4 end
  if tonumber(request[5]) ~= amountFen then return -2 end
  code = 2
  if request[4] == 'A' then
    -- Refunds (refund.lua) may have given back part of the payment already (`refd`): give back the rest.
    local giveBackFen = amountFen - (tonumber(request[8]) or 0)
    if giveBackFen > 0 then
      balanceFen = rcall('HINCRBY', accountKey, 'bal', giveBackFen)
      local version = rcall('HINCRBY', accountKey, 'ver', 1)
      local entryId = appendJournal(journalKey, 'rev', cardNo, giveBackFen, request[6], 'a:' .. cardNo,
        balanceFen, version, terminalId, sequence, nowMs)
      appendStatement(statementKey, nowMs, entryId, 'rev', giveBackFen, balanceFen, terminalId, sequence)
      emitTrailingEvent(account[2], cardNo, { 'k', 'rev', 'a', giveBackFen, 'b', balanceFen, 'm', request[6], 'tm', terminalId,
        'tx', entryId, 'ts', nowMs })
      code = 1
    end
    rcall('HSET', requestKey, 'pst', 'R')
  end
end

local answer = joinAnswer({ code, balanceFen, nowMs })
rcall('HSET', requestKey, 'rfp', fingerprint, 'rans', answer)
rcall('EXPIRE', requestKey, requestTtlSec)
return answer
