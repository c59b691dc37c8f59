--[[
  Recharge orders paid through a channel (Alipay, WeChat Pay): make one (reserving its amount against
  the card's daily recharge maximum) and finish one (closed, expired, or tidied after its credit). Moves
  no money: the credit is recharge.lua, on the SAME order key, which writes `fp` and `ans` there in the
  script that credits, so "paid" and "credited" are one fact (an order is paid iff its record has `ans`).

  Every key is in the card's shard {L:s}: the order record, the shard's pending index and the card's
  open orders, so each call is one slot.

  op 'create'
    KEYS[1] accountKey   {L:s}:acct:<card>
    KEYS[2] orderKey     {L:s}:order:<channel>:<orderId>    hash (also recharge.lua's record of the credit)
    KEYS[3] pendingKey   {L:s}:rchpend                      zset "<channel>:<orderId>" -> createdAtMs (the loop)
    KEYS[4] openKey      {L:s}:rchopen:<card>               hash orderId -> "<amountFen>|<dayKey>", or
                         "<amountFen>|<dayKey>|A" for an order needing an operator (see 'requery')
    KEYS[5] otherKey     {L:s}:order:<other channel>:<orderId>  the same order id on the other channel
    ARGV[1] 'create'  ARGV[2] cardNo  ARGV[3] channel WECHAT | ALIPAY  ARGV[4] orderId
    ARGV[5] amountFen  ARGV[6] fingerprint  ARGV[7] nowMs  ARGV[8] expiresAtMs  ARGV[9] dayKey
    ARGV[10] dailyLimitFen (0 = none)  ARGV[11] recordTtlSec  ARGV[12] maxOpen  ARGV[13] source
    Answers "<code>|<createdAtMs>|<expiresAtMs>|<rechargeableTodayFen>":
       1 created   2 exists (the same order was made before: its times)
       5 unknown account   9 card cancelled   11 daily limit exceeded   17 too many open orders
    (nothing changed unless 1). Or -1: the order id was used for another card, channel or amount (an
    order id is one request of one card: made on one channel, it is refused on the other, whose order
    would share its id, its place among the card's open orders and its state page).
    The daily check counts what was credited today (rday/rsum) plus the amounts of the card's open
    orders made today (those needing an operator too), so several unpaid orders cannot together pass
    the maximum; recharge.lua is then called without a daily limit (the channel has taken the money by
    then). The cap ARGV[12] counts the open orders not needing an operator.

  op 'finish'
    KEYS[1] orderKey  KEYS[2] pendingKey  KEYS[3] openKey  KEYS[4] attentionKey {L:s}:rchattn (zset, as pendingKey)
    ARGV[1] 'finish'  ARGV[2] channel WECHAT | ALIPAY  ARGV[3] orderId
    ARGV[4] state: S (tidy after the credit) | X (expired) | C (closed)  ARGV[5] nowMs
    Answers: 3 paid (credited: taken off the indexes)   1 closed (now, or before)
             4 still pending (S on an order without a credit: nothing changed)
             6 unknown order (taken off the indexes)
    An order needing attention (A) is closed like a pending one: the channel's answer came after all.

  op 'requery': the channel's answer to a query was not final (a system error, a timeout, still paying
    after the order expired). The order is asked again later (its pending score moved to ARGV[5]), and
    after ARGV[6] such answers it leaves the pending index for the attention index: state A, "needs an
    operator" (npm run cli -- recharge-attention lists them; reconciliation shows them). It stays
    creditable: a verified notification or a later query still credits it, once (recharge.lua), so it
    stays among the card's open orders, marked "|A": its amount still counts against the day it was
    made (here and in recharge.lua) until recharge.lua credits it (the amount moves to rsum in the same
    step) or 'finish' closes it, but it takes none of the card's ARGV[12] open places.
    KEYS[1] orderKey  KEYS[2] pendingKey  KEYS[3] openKey  KEYS[4] attentionKey
    ARGV[1] 'requery'  ARGV[2] channel  ARGV[3] orderId  ARGV[4] nowMs  ARGV[5] nextScoreMs  ARGV[6] maxUnknown
    Answers: 7 asked again later   8 needs attention (now)   3 paid   1 not pending (closed, or in
             attention already: nothing changed)   6 unknown order
    Fields: `ounk` the count of such answers, `oatt` when it went to attention.

  A malformed ARGV (count or format) is answered with the error reply "ERR recharge-order: ..." before
  any key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'recharge-order'
local ANSWER_CREATED = 1
local ANSWER_EXISTS = 2
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_CANCELLED = 9
local ANSWER_DAILY_LIMIT_EXCEEDED = 11
local ANSWER_TOO_MANY_OPEN = 17
local ANSWER_CLOSED = 1
local ANSWER_PAID = 3
local ANSWER_STILL_PENDING = 4
local ANSWER_UNKNOWN_ORDER = 6
local ANSWER_REQUEUED = 7
local ANSWER_NEEDS_ATTENTION = 8
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local op = ARGV[1]

-- @include answer
-- @include argv

local badArgv = argvCount(#ARGV >= 1, '13 for create, 5 for finish, 6 for requery') or argvOneOf(1, 'op', 'create', 'finish', 'requery')
if badArgv then return badArgv end
if op == 'create' then
  badArgv = argvCount(#ARGV == 13, '13 for create') or argvId(2, 'cardNo') or argvOneOf(3, 'channel', 'WECHAT', 'ALIPAY')
    or argvId(4, 'orderId') or argvInteger(5, 'amountFen', 1) or argvId(6, 'fingerprint') or argvInteger(7, 'nowMs', 0)
    or argvInteger(8, 'expiresAtMs', 0) or argvId(9, 'dayKey') or argvInteger(10, 'dailyLimitFen', 0)
    or argvInteger(11, 'recordTtlSec', 1) or argvInteger(12, 'maxOpen', 1) or argvId(13, 'source')
elseif op == 'finish' then
  badArgv = argvCount(#ARGV == 5, '5 for finish') or argvOneOf(2, 'channel', 'WECHAT', 'ALIPAY') or argvId(3, 'orderId')
    or argvOneOf(4, 'state', 'S', 'X', 'C') or argvInteger(5, 'nowMs', 0)
else
  badArgv = argvCount(#ARGV == 6, '6 for requery') or argvOneOf(2, 'channel', 'WECHAT', 'ALIPAY') or argvId(3, 'orderId')
    or argvInteger(4, 'nowMs', 0) or argvInteger(5, 'nextScoreMs', 0) or argvInteger(6, 'maxUnknown', 1)
end
if badArgv then return badArgv end

if op == 'requery' then
  local orderKey = KEYS[1]
  local pendingKey = KEYS[2]
  local openKey = KEYS[3]
  local attentionKey = KEYS[4]
  local member = ARGV[2] .. ':' .. ARGV[3]
  local record = rcall('HMGET', orderKey, 'ofp', 'ans', 'ost')
  if not record[1] then
    rcall('ZREM', pendingKey, member)
    return ANSWER_UNKNOWN_ORDER
  end
  if record[2] then return ANSWER_PAID end
  if record[3] ~= 'P' then return ANSWER_CLOSED end
  local unknown = rcall('HINCRBY', orderKey, 'ounk', 1)
  if unknown < tonumber(ARGV[6]) then
    rcall('ZADD', pendingKey, ARGV[5], member)
    return ANSWER_REQUEUED
  end
  rcall('HSET', orderKey, 'ost', 'A', 'oatt', ARGV[4])
  rcall('ZREM', pendingKey, member)
  rcall('ZADD', attentionKey, ARGV[4], member)
  -- It can still be paid and credited (without a limit), so its amount stays held against its day until
  -- it is credited or closed; marked '|A', it no longer takes one of the card's capped open places.
  local held = rcall('HGET', openKey, ARGV[3])
  if held and not string.find(held, '|A', 1, true) then rcall('HSET', openKey, ARGV[3], held .. '|A') end
  return ANSWER_NEEDS_ATTENTION
end

if op == 'finish' then
  local orderKey = KEYS[1]
  local pendingKey = KEYS[2]
  local openKey = KEYS[3]
  local attentionKey = KEYS[4]
  local orderId = ARGV[3]
  local state = ARGV[4]
  local record = rcall('HMGET', orderKey, 'ofp', 'ans', 'ost')
  local function unindex()
    rcall('ZREM', pendingKey, ARGV[2] .. ':' .. orderId)
    rcall('ZREM', attentionKey, ARGV[2] .. ':' .. orderId)
    rcall('HDEL', openKey, orderId)
  end
  if not record[1] then
    unindex()
    return ANSWER_UNKNOWN_ORDER
  end
  if record[2] then
    unindex()
    return ANSWER_PAID
  end
  if state == 'S' then return ANSWER_STILL_PENDING end
  if record[3] == 'P' or record[3] == 'A' then rcall('HSET', orderKey, 'ost', state, 'ocls', ARGV[5]) end
  unindex()
  return ANSWER_CLOSED
end

local accountKey = KEYS[1]
local orderKey = KEYS[2]
local pendingKey = KEYS[3]
local openKey = KEYS[4]
local cardNo = ARGV[2]
local channel = ARGV[3]
local orderId = ARGV[4]
local amountFen = tonumber(ARGV[5])
local fingerprint = ARGV[6]
local nowMs = ARGV[7]
local expiresAtMs = ARGV[8]
local dayKey = ARGV[9]
local dailyLimitFen = tonumber(ARGV[10])
local recordTtlSec = tonumber(ARGV[11])
local maxOpen = tonumber(ARGV[12])

local existing = rcall('HMGET', orderKey, 'ofp', 'ocat', 'oexp')
if existing[1] then
  if existing[1] ~= fingerprint then return REFUSED_KEY_REUSED end
  return joinAnswer({ ANSWER_EXISTS, existing[2], existing[3], -1 })
end
if rcall('EXISTS', KEYS[5]) == 1 then return REFUSED_KEY_REUSED end

local account = rcall('HMGET', accountKey, 'bal', 'st', 'rday', 'rsum')
if account[1] == false then return joinAnswer({ ANSWER_UNKNOWN_CARD, 0, 0, 0 }) end
if account[2] == 'C' then return joinAnswer({ ANSWER_CARD_CANCELLED, 0, 0, 0 }) end

local open = rcall('HGETALL', openKey)
-- The campus day this order counts in: the switch's (dayKey), or a later day already on the card (its
-- credits or open orders), begun by another switch whose clock runs a little ahead, when this switch's
-- clock is in the last minute of its day. A day's count never goes back, or the new day's maximum would
-- be passed; at any other time a differing day is another day, so a clock that once jumped ahead holds
-- no count long (as in recharge.lua).
local latest = account[3]
for i = 2, #open, 2 do
  local day = string.match(open[i], '^%d+|([^|]*)')
  if day and (not latest or day > latest) then latest = day end
end
if latest and latest > dayKey and (tonumber(nowMs) + 28800000) % 86400000 >= 86400000 - 60000 then dayKey = latest end
local openCount = 0
local reservedTodayFen = 0
if account[3] == dayKey then reservedTodayFen = tonumber(account[4]) or 0 end
for i = 2, #open, 2 do
  local amountText, day, attention = string.match(open[i], '^(%d+)|([^|]*)(.*)$')
  if day == dayKey then reservedTodayFen = reservedTodayFen + tonumber(amountText) end
  -- An order needing an operator (A) holds its amount but not one of the card's open places.
  if attention ~= '|A' then openCount = openCount + 1 end
end
local leftFen = -1
if dailyLimitFen > 0 then
  leftFen = dailyLimitFen - reservedTodayFen
  if leftFen < 0 then leftFen = 0 end
end
if openCount >= maxOpen then return joinAnswer({ ANSWER_TOO_MANY_OPEN, 0, 0, leftFen }) end
if dailyLimitFen > 0 and amountFen > leftFen then return joinAnswer({ ANSWER_DAILY_LIMIT_EXCEEDED, 0, 0, leftFen }) end

rcall('HSET', orderKey, 'ofp', fingerprint, 'card', cardNo, 'och', channel, 'oamt', amountFen, 'ost', 'P', 'ocat', nowMs,
  'oexp', expiresAtMs, 'osrc', ARGV[13])
rcall('EXPIRE', orderKey, recordTtlSec)
rcall('HSET', openKey, orderId, amountFen .. '|' .. dayKey)
rcall('EXPIRE', openKey, recordTtlSec)
rcall('ZADD', pendingKey, nowMs, channel .. ':' .. orderId)
if leftFen >= 0 then leftFen = leftFen - amountFen end
return joinAnswer({ ANSWER_CREATED, nowMs, expiresAtMs, leftFen })
