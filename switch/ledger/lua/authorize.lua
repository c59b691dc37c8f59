--[[
  Debit a card account for one POS payment, atomically and idempotently.

  KEYS[1] accountKey    {L:s}:acct:<card>     hash of the account
  KEYS[2] requestKey    {L:s}:req:<term>:<seq> hash: pfp/pans (payment), rfp/rans (reversal)
  KEYS[3] journalKey    {L:s}:journal         stream of the shard
  KEYS[4] statementKey  {L:s}:stmt:<card>     zset statement index of the card

  ARGV[1] cardNo
  ARGV[2] presentedSerial   card serial presented, '' when the credential is not a card tap
  ARGV[3] amountFen         integer > 0
  ARGV[4] fingerprint       what the request was (card, amount, credential kind)
  ARGV[5] terminalId
  ARGV[6] sequence
  ARGV[7] merchantParty     e.g. 'm:canteen-1'
  ARGV[8] nowMs
  ARGV[9] dayKey            YYYYMMDD in campus time
  ARGV[10] requestTtlSec
  ARGV[11] pinVerified      '1' when the card password was checked for this request
  ARGV[12..14] student limits: noPinPerPaymentFen, noPinPerDayFen, dailySpendLimitFen (0 = none)
  ARGV[15..17] staff limits, the same three
  A card's own fields lnp1, lnpd, ldl override its holder type's values.

  Returns one string "<code>|<balanceAfterFen>|<txnId>|<decidedAtMs>":
    code  1 approved         5 unknown account (no money moved)
          2 insufficient     6 card replaced (serial is not the account's current one)
          3 lost             7 already reversed (a reversal came first)
          4 frozen           8 daily limit exceeded
          9 cancelled       10 PIN required (over the password-free limits; NOT recorded, so
                               the same request may come again with the PIN)
  Or a number:
    -1 the key was used before for a different request (nothing changed)
]]
local rcall = redis.call
local accountKey = KEYS[1]
local requestKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]

local cardNo = ARGV[1]
local presentedSerial = ARGV[2]
local amountFen = tonumber(ARGV[3])
local fingerprint = ARGV[4]
local terminalId = ARGV[5]
local sequence = ARGV[6]
local merchantParty = ARGV[7]
local nowMs = ARGV[8]
local dayKey = ARGV[9]
local requestTtlSec = tonumber(ARGV[10])
local pinVerified = ARGV[11] == '1'

-- @include answer

-- One read of the request record: an earlier answer (pfp/pans) or a reversal that came first (rans).
local previous = rcall('HMGET', requestKey, 'pfp', 'pans', 'rans')
if previous[1] then
  if previous[1] == fingerprint then return previous[2] end
  return -1
end

-- Records the answer under the request key (pst: A approved, D declined) so a retry replays it.
local function decide(code, balanceFen, txnId)
  local answer = joinAnswer({ code, balanceFen, txnId, nowMs })
  local state = 'D'
  if code == 1 then state = 'A' end
  rcall('HSET', requestKey, 'pfp', fingerprint, 'pans', answer, 'pst', state, 'amt', amountFen, 'mp', merchantParty,
    'card', cardNo)
  rcall('EXPIRE', requestKey, requestTtlSec)
  return answer
end

local account = rcall('HMGET', accountKey, 'bal', 'st', 'ser', 'dday', 'dspent', 'sync', 'dnopin', 'ht', 'lnp1', 'lnpd', 'ldl', 'ver')
if previous[3] then return decide(7, account[1] or 0, '') end

local balanceFen = tonumber(account[1])
if balanceFen == nil then return decide(5, 0, '') end
if presentedSerial ~= '' and account[3] ~= presentedSerial then return decide(6, balanceFen, '') end

-- A tap on any terminal completes the card sync (e-card activation), even when the payment is declined.
if presentedSerial ~= '' and account[6] ~= '1' then rcall('HSET', accountKey, 'sync', '1') end

local status = account[2]
if status == 'L' then return decide(3, balanceFen, '') end
if status == 'F' then return decide(4, balanceFen, '') end
if status == 'C' then return decide(9, balanceFen, '') end

local limitBase = 12
if account[8] == 'T' then limitBase = 15 end
local noPinPerPaymentFen = tonumber(account[9] or ARGV[limitBase])
local noPinPerDayFen = tonumber(account[10] or ARGV[limitBase + 1])
local dailyLimitFen = tonumber(account[11] or ARGV[limitBase + 2])

local daySpentFen = 0
local dayNoPinFen = 0
if account[4] == dayKey then
  daySpentFen = tonumber(account[5]) or 0
  dayNoPinFen = tonumber(account[7]) or 0
end
if balanceFen < amountFen then return decide(2, balanceFen, '') end
if dailyLimitFen > 0 and daySpentFen + amountFen > dailyLimitFen then return decide(8, balanceFen, '') end
if not pinVerified and (amountFen > noPinPerPaymentFen or dayNoPinFen + amountFen > noPinPerDayFen) then
  return joinAnswer({ 10, balanceFen, '', nowMs })
end

-- Balance, version and the day's totals in one write (balanceFen >= amountFen was checked above).
local balanceAfterFen = balanceFen - amountFen
local version = (tonumber(account[12]) or 0) + 1
if not pinVerified then dayNoPinFen = dayNoPinFen + amountFen end
rcall('HSET', accountKey, 'bal', balanceAfterFen, 'ver', version, 'dday', dayKey, 'dspent', daySpentFen + amountFen, 'dnopin', dayNoPinFen)
local entryId = appendJournal(journalKey, 'pay', cardNo, amountFen, 'a:' .. cardNo, merchantParty,
  balanceAfterFen, version, terminalId, sequence, nowMs)
appendStatement(statementKey, nowMs, entryId, 'pay', -amountFen, balanceAfterFen, terminalId, sequence)
return decide(1, balanceAfterFen, entryId)
