--[[
  The record of one third-party (Alipay / WeChat) code payment of a terminal, in the terminal's slot
  next to its sequence claims. Moves no money: the payer's money moves at the channel, and the ledger's
  journal entry of a paid payment is channel-paid.lua's (in the card's shard). domain/channel-payment.ts
  calls 'begin' BEFORE it calls the channel, so a crash can never leave a channel payment the switch
  does not know about; the follow-up loop finishes every record left undecided.

  KEYS[1] claimKey   <prefix>:{T:<terminal>}:seq:<seq>   the sequence claim (owner "cp:<outTradeNo>")
  KEYS[2] recordKey  <prefix>:{T:<terminal>}:cp:<seq>    hash: fp fingerprint, ch channel, otn out_trade_no,
                     amt, mp merchant party, st P undecided / S paid (sale) / D declined / R reversed,
                     at created ms, dl follow-up deadline ms, dt decided ms, card, ctx channel txn id,
                     payer, why decline reason, tx journal entry id, undo 1 while money may still have to go
                     back to the payer at the channel, tomb 1 for a reversal that came first

  ARGV[1] op 'begin': ARGV[2] fingerprint ARGV[3] channel ARGV[4] outTradeNo ARGV[5] amountFen
                      ARGV[6] merchantParty ARGV[7] nowMs ARGV[8] deadlineMs ARGV[9] ttlSec
      1 begun (claimed and recorded now)   2 exists (this very payment, or a reversal tombstone: read the record)
     -1 the sequence number was used for another request (nothing changed)
  ARGV[1] op 'finish': ARGV[2] state S | D | R  ARGV[3] nowMs  ARGV[4] undo '0' | '1'  ARGV[5] cardNo
                      ARGV[6] channelTxnId ARGV[7] payerId ARGV[8] why ARGV[9] journalId (each '' when none)
      3 finished   4 already final (S or D or R when asked for R; nothing changed)   5 no record
      S and D only from P; R from P or S.
  ARGV[1] op 'tombstone': ARGV[2] outTradeNo ARGV[3] amountFen ARGV[4] nowMs ARGV[5] ttlSec
      3 finished (a reversed record without payment: a later 'begin' answers exists)   2 exists
     -1 the sequence number was used for another request
  ARGV[1] op 'undone': the money is back with the payer (or there was none): clears undo.
      3 finished   5 no record
  ARGV[1] op 'rearm': the channel took money after the record was decided R or D and its undo cleared (a
                      WeChat reverse answered ORDERNOTEXIST before the switch's own micropay reached it):
                      sets undo again, so the money goes back.
      3 finished (R or D: undo set)   4 already final (P or S: nothing changed)   5 no record
  ARGV[1] op 'card': ARGV[2] cardNo: the payer's card, known before the payment is decided (WeChat names
                      the payer before charging), so a decline can still tell the holder (live events); and
                      written again before a paid answer's sale is journalled, so the record always names the
                      card whose shard holds a journalled sale (a give-back then finds it and reverses it).
      3 finished (undecided: recorded)   4 already final (decided: its card recorded only when it had none)
      5 no record

  A malformed ARGV (count or format) is answered with the error reply "ERR channel-pay: ..." before any
  key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'channel-pay'
local ANSWER_BEGUN = 1
local ANSWER_EXISTS = 2
local ANSWER_FINISHED = 3
local ANSWER_ALREADY_FINAL = 4
local ANSWER_NO_RECORD = 5
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local claimKey = KEYS[1]
local recordKey = KEYS[2]
local op = ARGV[1]

-- @include argv

local badArgv = argvCount(#ARGV >= 1, '1 to 9 (by op)')
  or argvOneOf(1, 'op', 'begin', 'finish', 'tombstone', 'undone', 'rearm', 'card')
if badArgv then return badArgv end
if op == 'begin' then
  badArgv = argvCount(#ARGV == 9, '9 for begin') or argvId(2, 'fingerprint') or argvOneOf(3, 'channel', 'alipay', 'wechat')
    or argvId(4, 'outTradeNo') or argvInteger(5, 'amountFen', 1) or argvId(6, 'merchantParty') or argvInteger(7, 'nowMs', 0)
    or argvInteger(8, 'deadlineMs', 0) or argvInteger(9, 'ttlSec', 1)
elseif op == 'finish' then
  badArgv = argvCount(#ARGV == 9, '9 for finish') or argvOneOf(2, 'state', 'S', 'D', 'R') or argvInteger(3, 'nowMs', 0)
    or argvFlag(4, 'undo')
elseif op == 'tombstone' then
  badArgv = argvCount(#ARGV == 5, '5 for tombstone') or argvId(2, 'outTradeNo') or argvInteger(3, 'amountFen', 1)
    or argvInteger(4, 'nowMs', 0) or argvInteger(5, 'ttlSec', 1)
elseif op == 'card' then
  badArgv = argvCount(#ARGV == 2, '2 for card') or argvId(2, 'cardNo')
else
  badArgv = argvCount(#ARGV == 1, '1 for ' .. op)
end
if badArgv then return badArgv end

if op == 'begin' or op == 'tombstone' then
  local owner = 'cp:' .. (op == 'begin' and ARGV[4] or ARGV[2])
  local claim = rcall('GET', claimKey)
  if claim and claim ~= owner then return REFUSED_KEY_REUSED end
  local record = rcall('HMGET', recordKey, 'fp', 'tomb')
  if record[1] then
    if op == 'tombstone' or record[1] == ARGV[2] or record[2] == '1' then return ANSWER_EXISTS end
    return REFUSED_KEY_REUSED
  end
  if op == 'begin' then
    local ttl = tonumber(ARGV[9])
    rcall('SET', claimKey, owner, 'EX', ttl)
    rcall('HSET', recordKey, 'fp', ARGV[2], 'ch', ARGV[3], 'otn', ARGV[4], 'amt', ARGV[5], 'mp', ARGV[6], 'st', 'P',
      'at', ARGV[7], 'dl', ARGV[8])
    rcall('EXPIRE', recordKey, ttl)
    return ANSWER_BEGUN
  end
  local ttl = tonumber(ARGV[5])
  rcall('SET', claimKey, owner, 'EX', ttl)
  rcall('HSET', recordKey, 'fp', 'tombstone', 'otn', ARGV[2], 'amt', ARGV[3], 'st', 'R', 'at', ARGV[4], 'dt', ARGV[4], 'tomb', '1')
  rcall('EXPIRE', recordKey, ttl)
  return ANSWER_FINISHED
end

local st = rcall('HGET', recordKey, 'st')
if not st then return ANSWER_NO_RECORD end
if op == 'undone' then
  rcall('HDEL', recordKey, 'undo')
  return ANSWER_FINISHED
end
if op == 'rearm' then
  if st ~= 'R' and st ~= 'D' then return ANSWER_ALREADY_FINAL end
  rcall('HSET', recordKey, 'undo', '1')
  return ANSWER_FINISHED
end
if op == 'card' then
  if st == 'P' then
    rcall('HSET', recordKey, 'card', ARGV[2])
    return ANSWER_FINISHED
  end
  rcall('HSETNX', recordKey, 'card', ARGV[2])
  return ANSWER_ALREADY_FINAL
end
local state = ARGV[2]
if not (st == 'P' or (state == 'R' and st == 'S')) then return ANSWER_ALREADY_FINAL end
rcall('HSET', recordKey, 'st', state, 'dt', ARGV[3])
if ARGV[4] == '1' then rcall('HSET', recordKey, 'undo', '1') end
local names = { 'card', 'ctx', 'payer', 'why', 'tx' }
for i = 1, 5 do
  if ARGV[4 + i] ~= '' then rcall('HSET', recordKey, names[i], ARGV[4 + i]) end
end
return ANSWER_FINISHED
