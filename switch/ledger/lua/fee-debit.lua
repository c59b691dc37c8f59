--[[
  First step of a utility fee (campus network top-up, dormitory electricity): take the fee from the
  card account, idempotently per (kiosk terminal, sequence number). The fee provider is called after
  this script; fee-complete.lua records its receipt, or fee-giveback.lua returns the money. Until one
  of them ran the request is pending: its record says so, and the shard's pending index lists it, so
  a retry (or the recovery sweep in domain/fees.ts) finishes the job and money is never left taken
  with nothing delivered.

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] requestKey    {L:s}:req:<term>:<seq>   pfp/pans fingerprint and answer, pst, amt, card, up,
                                                 utg, dbal/dtx/dts (the debit), rcpt (the receipt),
                                                 ttl (its expiry once final; none while pending)
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>
  KEYS[5] pendingKey    {L:s}:feepend          zset: score = debit ms, member = '<term>|<seq>|<card>'

  ARGV[1] cardNo
  ARGV[2] amountFen       integer > 0
  ARGV[3] fingerprint     what the request was (card, amount, kind, target)
  ARGV[4] terminalId      the kiosk (journal `tm`)
  ARGV[5] sequence        (journal `sq`)
  ARGV[6] utilityParty    'u:network' | 'u:electricity'
  ARGV[7] targetJson      the provider target, kept so the recovery sweep can call the provider again
  ARGV[8] nowMs
  ARGV[9] requestTtlSec

  Request states (pst): P pending (money taken), A delivered, B given back, D declined (nothing taken).

  Returns one string "<code>|<balanceAfterFen>|<txnId>|<decidedAtMs>|<detail>":
    code  1 delivered (detail = provider receipt)           final, recorded
          2 insufficient funds                               final, recorded, nothing taken
          3 card lost   4 card frozen   9 card cancelled     final, recorded, nothing taken
          5 unknown account                                  not recorded, nothing changed
         10 pending: the money is taken and the provider has not confirmed; call it (again)
         11 given back (detail = why the provider did not deliver)  final, recorded
  Or a number (nothing changed):
    -1 the key was used before for a different request
]]
local rcall = redis.call
local accountKey = KEYS[1]
local requestKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]
local pendingKey = KEYS[5]

local cardNo = ARGV[1]
local amountFen = tonumber(ARGV[2])
local fingerprint = ARGV[3]
local terminalId = ARGV[4]
local sequence = ARGV[5]
local utilityParty = ARGV[6]
local targetJson = ARGV[7]
local nowMs = ARGV[8]
local requestTtlSec = tonumber(ARGV[9])

-- @include answer

if amountFen == nil or amountFen <= 0 or amountFen ~= math.floor(amountFen) then
  return redis.error_reply('fee-debit.lua: amount must be a whole number of fen > 0, got ' .. tostring(ARGV[2]))
end

local previous = rcall('HMGET', requestKey, 'pfp', 'pans', 'rfp')
if previous[1] then
  if previous[1] == fingerprint then return previous[2] end
  return -1
end
if previous[3] then return -1 end

local function record(state, answer)
  rcall('HSET', requestKey, 'pfp', fingerprint, 'pans', answer, 'pst', state, 'amt', amountFen, 'card', cardNo,
    'up', utilityParty, 'utg', targetJson, 'ttl', requestTtlSec)
  -- A pending request must outlive any provider outage: it expires only once it is final
  -- (fee-complete.lua or fee-giveback.lua set the expiry then).
  if state == 'P' then rcall('PERSIST', requestKey) else rcall('EXPIRE', requestKey, requestTtlSec) end
  return answer
end

local account = rcall('HMGET', accountKey, 'bal', 'st')
local balanceFen = tonumber(account[1])
if balanceFen == nil then return joinAnswer({ 5, 0, '', nowMs, '' }) end
local status = account[2]
if status == 'L' then return record('D', joinAnswer({ 3, balanceFen, '', nowMs, '' })) end
if status == 'F' then return record('D', joinAnswer({ 4, balanceFen, '', nowMs, '' })) end
if status == 'C' then return record('D', joinAnswer({ 9, balanceFen, '', nowMs, '' })) end
if balanceFen < amountFen then return record('D', joinAnswer({ 2, balanceFen, '', nowMs, '' })) end

local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', -amountFen)
if balanceAfterFen < 0 then
  return redis.error_reply('INVARIANT balance negative for ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
local entryId = appendJournal(journalKey, 'fee', cardNo, amountFen, 'a:' .. cardNo, utilityParty,
  balanceAfterFen, version, terminalId, sequence, nowMs)
appendStatement(statementKey, nowMs, entryId, 'fee', -amountFen, balanceAfterFen, terminalId, sequence)
rcall('ZADD', pendingKey, nowMs, terminalId .. '|' .. sequence .. '|' .. cardNo)
rcall('HSET', requestKey, 'dbal', balanceAfterFen, 'dtx', entryId, 'dts', nowMs)
return record('P', joinAnswer({ 10, balanceAfterFen, entryId, nowMs, '' }))
