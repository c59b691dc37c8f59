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
  ARGV[8] dayKey          YYYYMMDD of the campus day now (UTC+8)
  ARGV[9] dayStartMs      when that campus day began
  Last: KEYS[5] eventsKey {L:s}:ev:<card>, ARGV[10] eventsChannel, ARGV[11] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  A payment of today that is reversed no longer counts in the day's spending (the account's `day`
  "<YYYYMMDD>,<spent>,<spent without password>": its spent part); the password-free part stays, since
  the record does not say whether the payment was made with the password (never fewer checks than the
  limits ask for). A payment of an earlier day changes no total.

  Returns one string "<code>|<balanceAfterFen>|<decidedAtMs>":
    code 1 reversed (what was not yet refunded is back on the account)
         2 nothing to reverse (payment declined, or already refunded in full)
         3 tombstoned (payment not seen yet)
  Or a number (nothing changed):
    -1 this reversal key was used before for a different reversal
    -2 the amount differs from the payment's amount
    -3 the payment belongs to another card
    -4 the request is a small-wallet move (water debit / settlement), which is never reversed

  A malformed ARGV (count or format) is answered with the error reply "ERR reverse: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'reverse'
local ANSWER_REVERSED = 1
local ANSWER_NOTHING_TO_REVERSE = 2
local ANSWER_TOMBSTONED = 3
local REFUSED_KEY_REUSED = -1
local REFUSED_AMOUNT_DIFFERS = -2
local REFUSED_OTHER_CARD = -3
local REFUSED_SMALL_WALLET_MOVE = -4

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
local dayKey = ARGV[8]
local dayStartMs = tonumber(ARGV[9])

-- @include answer
-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 11, '11')
  or argvId(1, 'cardNo') or argvInteger(2, 'amountFen', 1) or argvId(3, 'fingerprint') or argvId(4, 'terminalId')
  or argvInteger(5, 'sequence', 1) or argvInteger(6, 'nowMs', 0) or argvInteger(7, 'requestTtlSec', 1)
  or argvId(8, 'dayKey') or argvInteger(9, 'dayStartMs', 0) or argvId(10, 'eventsChannel') or argvInteger(11, 'eventTtlSec', 1)
if badArgv then return badArgv end

-- This reversal's own record (rfp/rans) and the payment's fields, in one read.
local recorded, request = recordedAnswer(requestKey, fingerprint, 'rfp', 'rans', 'pfp', 'pst', 'amt', 'mp', 'card', 'refd', 'pans')
if recorded then return recorded end
if recorded == false then return REFUSED_KEY_REUSED end

local account = rcall('HMGET', accountKey, 'bal', 'eu', 'day')
local balanceFen = tonumber(account[1] or '0')
local code = ANSWER_TOMBSTONED
if request[3] then
  if request[7] ~= cardNo then return REFUSED_OTHER_CARD end
  if request[4] == 'W' then return REFUSED_SMALL_WALLET_MOVE end
  if tonumber(request[5]) ~= amountFen then return REFUSED_AMOUNT_DIFFERS end
  -- A payment's compact record becomes the hash this script writes into, before its first write.
  requestAsHash(requestKey)
  code = ANSWER_NOTHING_TO_REVERSE
  if request[4] == 'A' then
    -- Refunds (refund.lua) may have given back part of the payment already (`refd`): give back the rest.
    local giveBackFen = amountFen - (tonumber(request[8]) or 0)
    if giveBackFen > 0 then
      balanceFen = rcall('HINCRBY', accountKey, 'bal', giveBackFen)
      local version = rcall('HINCRBY', accountKey, 'ver', 1)
      local entryId = appendJournal(journalKey, 'rev', cardNo, digits(giveBackFen), request[6], 'a:' .. cardNo,
        digits(balanceFen), digits(version), terminalId, sequence, nowMs)
      appendStatement(statementKey, nowMs, entryId, 'rev', digits(giveBackFen), digits(balanceFen), terminalId, sequence)
      emitTrailingEvent(account[2], cardNo, { 'k', 'rev', 'a', giveBackFen, 'b', balanceFen, 'm', request[6], 'tm', terminalId,
        'tx', entryId, 'ts', nowMs })
      code = ANSWER_REVERSED
    end
    rcall('HSET', requestKey, 'pst', 'R')
    -- The payment is undone: if it was made today, today's spending no longer holds it.
    local paidAtMs = tonumber(string.match(request[9] or '', '|(%d+)$'))
    local day, spentText, noPinText = string.match(account[3] or '', '^(%d+),(%d+),(%d+)$')
    if paidAtMs and paidAtMs >= dayStartMs and day == dayKey then
      local spentFen = tonumber(spentText) - amountFen
      if spentFen < 0 then spentFen = 0 end
      rcall('HSET', accountKey, 'day', day .. ',' .. digits(spentFen) .. ',' .. noPinText)
    end
  end
end

local answer = joinAnswer({ code, balanceFen, nowMs })
rcall('HSET', requestKey, 'rfp', fingerprint, 'rans', answer)
rcall('EXPIRE', requestKey, requestTtlSec)
return answer
