--[[
  Credit a card account from one paid channel order (WeChat, Alipay, the counter), atomically and
  exactly once per (channel, order id). A lost or frozen card still takes recharges (the guide: a
  loss report does not block recharge); a cancelled card does not.

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] orderKey      {L:s}:order:<channel>:<orderId>   hash: fp fingerprint, ans answer, card
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>

  ARGV[1] cardNo
  ARGV[2] channel          WECHAT | ALIPAY | COUNTER (journal party x:ch:<channel>)
  ARGV[3] orderId          the channel's order id (journal `sq`)
  ARGV[4] amountFen        integer > 0; the channel's single-recharge maximum is checked by the caller
  ARGV[5] fingerprint      what the order was (card, amount, channel)
  ARGV[6] source           kiosk terminal id or operator name (journal `tm`)
  ARGV[7] nowMs
  ARGV[8] dayKey           YYYYMMDD in campus time
  ARGV[9] dailyLimitFen    most a card may be recharged per campus day; 0 = no limit
  ARGV[10] recordTtlSec    how long the order record (the exactly-once guarantee) is kept
  ARGV[11] reason          an operator's reason (journal field `r`), '' for none
  Last: KEYS[5] eventsKey {L:s}:ev:<card>, ARGV[12] eventsChannel, ARGV[13] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  Account fields used: bal, st, ver, rday/rsum (the campus day and the sum recharged on it).

  Returns one string "<code>|<balanceAfterFen>|<txnId>|<decidedAtMs>|<rechargeableTodayFen>":
    code  1 credited                (recorded: a retry returns this string unchanged)
          5 unknown account         (not recorded, nothing changed)
          9 card cancelled          (not recorded, nothing changed)
         11 daily limit exceeded    (not recorded, nothing changed)
    rechargeableTodayFen: what may still be recharged today after this answer; -1 = no limit.
  Or a number (nothing changed):
    -1 the order id was used before for a different card or amount
]]
local rcall = redis.call
local accountKey = KEYS[1]
local orderKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]

local cardNo = ARGV[1]
local channel = ARGV[2]
local orderId = ARGV[3]
local amountFen = tonumber(ARGV[4])
local fingerprint = ARGV[5]
local source = ARGV[6]
local nowMs = ARGV[7]
local dayKey = ARGV[8]
local dailyLimitFen = tonumber(ARGV[9])
local recordTtlSec = tonumber(ARGV[10])
local reason = ARGV[11] or ''

-- @include answer
-- @include event

if amountFen == nil or amountFen <= 0 or amountFen ~= math.floor(amountFen) then
  return redis.error_reply('recharge.lua: amount must be a whole number of fen > 0, got ' .. tostring(ARGV[4]))
end

local previous = rcall('HMGET', orderKey, 'fp', 'ans')
if previous[1] then
  if previous[1] == fingerprint then return previous[2] end
  return -1
end

local account = rcall('HMGET', accountKey, 'bal', 'st', 'rday', 'rsum', 'eu')
local balanceFen = tonumber(account[1])
if balanceFen == nil then return joinAnswer({ 5, 0, '', nowMs, 0 }) end

local rechargedTodayFen = 0
if account[3] == dayKey then rechargedTodayFen = tonumber(account[4]) or 0 end
local function rechargeableAfter(sumFen)
  if dailyLimitFen <= 0 then return -1 end
  local left = dailyLimitFen - sumFen
  if left < 0 then left = 0 end
  return left
end

if account[2] == 'C' then return joinAnswer({ 9, balanceFen, '', nowMs, rechargeableAfter(rechargedTodayFen) }) end
if dailyLimitFen > 0 and rechargedTodayFen + amountFen > dailyLimitFen then
  return joinAnswer({ 11, balanceFen, '', nowMs, rechargeableAfter(rechargedTodayFen) })
end

local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', amountFen)
if balanceAfterFen < amountFen then
  -- A credit can only raise a balance that was >= 0; anything else means the account was already broken.
  return redis.error_reply('INVARIANT balance negative before recharge of ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
rcall('HSET', accountKey, 'rday', dayKey, 'rsum', rechargedTodayFen + amountFen)
local extra = nil
if reason ~= '' then extra = { 'r', reason } end
local entryId = appendJournal(journalKey, 'rch', cardNo, amountFen, 'x:ch:' .. channel, 'a:' .. cardNo,
  balanceAfterFen, version, source, orderId, nowMs, extra)
appendStatement(statementKey, nowMs, entryId, 'rch', amountFen, balanceAfterFen, source, orderId)
emitTrailingEvent(account[5], cardNo, { 'k', 'rch', 'a', amountFen, 'b', balanceAfterFen, 'm', 'x:ch:' .. channel, 'tm', source,
  'tx', entryId, 'ts', nowMs })

local answer = joinAnswer({ 1, balanceAfterFen, entryId, nowMs, rechargeableAfter(rechargedTodayFen + amountFen) })
rcall('HSET', orderKey, 'fp', fingerprint, 'ans', answer, 'card', cardNo)
rcall('EXPIRE', orderKey, recordTtlSec)
return answer
