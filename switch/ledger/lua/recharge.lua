--[[
  Credit a card account from one paid channel order (WeChat, Alipay, the counter), atomically and
  exactly once per (channel, order id). A lost or frozen card still takes recharges (the guide: a
  loss report does not block recharge); a cancelled card does not.

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] orderKey      {L:s}:order:<channel>:<orderId>   hash: fp fingerprint, ans answer, card
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>
  KEYS[5] openKey       {L:s}:rchopen:<card>  the card's unpaid recharge orders (recharge-order.lua), those
                        needing an operator too: their amounts made today count against the daily limit,
                        and a credited order leaves it (its amount is in rsum from then on)
  KEYS[6] pendingKey    {L:s}:rchpend         the shard's pending channel orders (recharge-order.lua)
  KEYS[7] attentionKey  {L:s}:rchattn         the shard's orders needing an operator (recharge-order.lua):
                        a credited order leaves both (member "<channel>:<orderId>") in this script, so no
                        crash between the credit and recharge-order.lua 'finish' S leaves it indexed; a
                        recharge with no order there (the counter, Alipay 校园派) removes nothing

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
  ARGV[12] keepRefusal     '1': a refusal (5, 9, 11) is recorded on the order like a credit, so every later
                           call for the order gets the same refusal (an Alipay 校园派 payment refused is
                           refunded to the payer: it must never be credited after); '0': refusals change nothing
  Last: KEYS[8] eventsKey {L:s}:ev:<card>, ARGV[13] eventsChannel, ARGV[14] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  Account fields used: bal, st, ver, rday/rsum (the campus day and the sum recharged on it).

  Returns one string "<code>|<balanceAfterFen>|<txnId>|<decidedAtMs>|<rechargeableTodayFen>":
    code  1 credited                (recorded: a retry returns this string unchanged)
          5 unknown account         (nothing changed; recorded only with keepRefusal)
          9 card cancelled          (nothing changed; recorded only with keepRefusal)
         11 daily limit exceeded    (nothing changed; recorded only with keepRefusal): what was credited
                                    today plus the card's open orders made today plus this one is over it
    An open order made on an earlier campus day (made before midnight, paid after) counts on that day,
    where its amount was held: it is neither checked against today's maximum nor added to today's sum
    (it goes into its own day's rday/rsum, unless the card's sum is already of a later day).
    rechargeableTodayFen: what may still be recharged today after this answer; -1 = no limit.
  Or a number (nothing changed):
    -1 the order id was used before for a different card or amount

  A malformed ARGV (count or format) is answered with the error reply "ERR recharge: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending); so is a call with
  other than 8 KEYS ("ERR recharge: needs 8 KEYS ...").
]]
local SCRIPT = 'recharge'
local ANSWER_CREDITED = 1
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_CANCELLED = 9
local ANSWER_DAILY_LIMIT_EXCEEDED = 11
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local accountKey = KEYS[1]
local orderKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]
local openKey = KEYS[5]
local pendingKey = KEYS[6]
local attentionKey = KEYS[7]

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
local keepRefusal = ARGV[12] == '1'

-- @include answer
-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 14, '14')
  or argvId(1, 'cardNo') or argvOneOf(2, 'channel', 'WECHAT', 'ALIPAY', 'COUNTER') or argvId(3, 'orderId')
  or argvInteger(4, 'amountFen', 1) or argvId(5, 'fingerprint') or argvId(6, 'source') or argvInteger(7, 'nowMs', 0)
  or argvId(8, 'dayKey') or argvInteger(9, 'dailyLimitFen', 0) or argvInteger(10, 'recordTtlSec', 1)
  or argvFlag(12, 'keepRefusal') or argvId(13, 'eventsChannel') or argvInteger(14, 'eventTtlSec', 1)
if badArgv then return badArgv end
-- The events stream is KEYS[#KEYS]: a call with the keys of before (6, no indexes) would take it for an index.
if #KEYS ~= 8 then return argvError('needs 8 KEYS (the indexes sixth and seventh, the events stream last), got ' .. #KEYS) end

local recorded = recordedAnswer(orderKey, fingerprint, 'fp', 'ans')
if recorded then return recorded end
if recorded == false then return REFUSED_KEY_REUSED end

local account = rcall('HMGET', accountKey, 'bal', 'st', 'rday', 'rsum', 'eu')
local balanceFen = tonumber(account[1])
local function refused(answer)
  if keepRefusal then
    rcall('HSET', orderKey, 'fp', fingerprint, 'ans', answer, 'card', cardNo)
    rcall('EXPIRE', orderKey, recordTtlSec)
  end
  return answer
end
if balanceFen == nil then return refused(joinAnswer({ ANSWER_UNKNOWN_CARD, 0, '', nowMs, 0 })) end

-- The campus day this call counts in: the switch's (dayKey), or a later day already on the card, begun by
-- another switch whose clock runs a little ahead, when this switch's clock is in the last minute of its
-- day. A day's count never goes back, or the new day's totals would be wiped (and its maximum passed); at
-- any other time a differing day is another day, so a clock that once jumped ahead holds no count long.
local function countingDay(day, seen)
  if seen and seen > day and (tonumber(nowMs) + 28800000) % 86400000 >= 86400000 - 60000 then return seen end
  return day
end
-- An order made on an earlier campus day (made before midnight, paid after) held its amount against
-- that day's maximum while it was open: it is that day's recharge, and takes nothing of today's.
local heldDay = string.match(rcall('HGET', openKey, orderId) or '', '^%d+|(%d+)')
dayKey = countingDay(countingDay(dayKey, account[3]), heldDay)
local rechargedTodayFen = 0
if account[3] == dayKey then rechargedTodayFen = tonumber(account[4]) or 0 end
local countsToday = not (heldDay and heldDay < dayKey)
-- The answer's last field when there is no daily limit (a field, not an answer code).
local UNLIMITED_FEN = -1
local function rechargeableAfter(sumFen)
  if dailyLimitFen <= 0 then return UNLIMITED_FEN end
  local left = dailyLimitFen - sumFen
  if left < 0 then left = 0 end
  return left
end

-- The card's unpaid orders of today hold their amounts (recharge-order.lua): they are credited without
-- a limit once paid, so a limited recharge counts them too (only when there is a limit to keep).
local reservedTodayFen = rechargedTodayFen
if dailyLimitFen > 0 then
  local open = rcall('HGETALL', openKey)
  -- An order made on the next day by a switch ahead counts as that day too (countingDay).
  local latest = nil
  for i = 2, #open, 2 do
    local day = string.match(open[i], '^%d+|([^|]*)')
    if day and (not latest or day > latest) then latest = day end
  end
  local later = countingDay(dayKey, latest)
  if later ~= dayKey then
    dayKey = later
    countsToday = not (heldDay and heldDay < dayKey)
    rechargedTodayFen = 0
    if account[3] == dayKey then rechargedTodayFen = tonumber(account[4]) or 0 end
    reservedTodayFen = rechargedTodayFen
  end
  for i = 1, #open, 2 do
    -- "<amountFen>|<dayKey>", "|A" after it for an order needing an operator (it counts all the same).
    local amountText, day = string.match(open[i + 1], '^(%d+)|([^|]*)')
    if open[i] ~= orderId and day == dayKey then reservedTodayFen = reservedTodayFen + tonumber(amountText) end
  end
end
if account[2] == 'C' then return refused(joinAnswer({ ANSWER_CARD_CANCELLED, balanceFen, '', nowMs, rechargeableAfter(reservedTodayFen) })) end
if dailyLimitFen > 0 and countsToday and reservedTodayFen + amountFen > dailyLimitFen then
  return refused(joinAnswer({ ANSWER_DAILY_LIMIT_EXCEEDED, balanceFen, '', nowMs, rechargeableAfter(reservedTodayFen) }))
end

local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', amountFen)
if balanceAfterFen < amountFen then
  -- A credit can only raise a balance that was >= 0; anything else means the account was already broken.
  return redis.error_reply('INVARIANT balance negative before recharge of ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
local todayFen = 0
if countsToday then
  todayFen = amountFen
  rcall('HSET', accountKey, 'rday', dayKey, 'rsum', rechargedTodayFen + amountFen)
elseif not account[3] or account[3] <= heldDay then
  -- Its day's sum takes it as it leaves the open orders: a switch whose clock runs behind, still on that
  -- day, would otherwise find neither the order nor its credit and allow that day's maximum again.
  local heldSumFen = 0
  if account[3] == heldDay then heldSumFen = tonumber(account[4]) or 0 end
  rcall('HSET', accountKey, 'rday', heldDay, 'rsum', heldSumFen + amountFen)
end
-- A paid order no longer holds its amount: it is in rsum now.
rcall('HDEL', openKey, orderId)
-- Paid means off the settlement loop and off the operator's list, in the same step as the credit.
rcall('ZREM', pendingKey, channel .. ':' .. orderId)
rcall('ZREM', attentionKey, channel .. ':' .. orderId)
local extra = nil
if reason ~= '' then extra = { 'r', reason } end
local entryId = appendJournal(journalKey, 'rch', cardNo, digits(amountFen), 'x:ch:' .. channel, 'a:' .. cardNo,
  digits(balanceAfterFen), digits(version), source, orderId, nowMs, extra)
appendStatement(statementKey, nowMs, entryId, 'rch', digits(amountFen), digits(balanceAfterFen), source, orderId)
emitTrailingEvent(account[5], cardNo, { 'k', 'rch', 'a', amountFen, 'b', balanceAfterFen, 'm', 'x:ch:' .. channel, 'tm', source,
  'tx', entryId, 'ts', nowMs })

local answer = joinAnswer({ ANSWER_CREDITED, balanceAfterFen, entryId, nowMs, rechargeableAfter(reservedTodayFen + todayFen) })
rcall('HSET', orderKey, 'fp', fingerprint, 'ans', answer, 'card', cardNo)
rcall('EXPIRE', orderKey, recordTtlSec)
return answer
