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

  A malformed ARGV (count or format) is answered with the error reply "ERR fee-debit: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'fee-debit'
local ANSWER_DELIVERED = 1
local ANSWER_INSUFFICIENT_FUNDS = 2
local ANSWER_CARD_LOST = 3
local ANSWER_CARD_FROZEN = 4
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_CANCELLED = 9
local ANSWER_PENDING = 10
local ANSWER_GIVEN_BACK = 11
local REFUSED_KEY_REUSED = -1

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
-- @include argv

local badArgv = argvCount(#ARGV == 9, '9')
  or argvId(1, 'cardNo') or argvInteger(2, 'amountFen', 1) or argvId(3, 'fingerprint') or argvId(4, 'terminalId')
  or argvInteger(5, 'sequence', 1) or argvOneOf(6, 'utilityParty', 'u:network', 'u:electricity')
  or argvId(7, 'targetJson') or argvInteger(8, 'nowMs', 0) or argvInteger(9, 'requestTtlSec', 1)
if badArgv then return badArgv end

-- The record answers a retry (pfp/pans); a reversal recorded under the key (rfp) means the terminal
-- used the sequence number for a payment.
local recorded, previous = recordedAnswer(requestKey, fingerprint, 'pfp', 'pans', 'rfp')
if recorded then return recorded end
if recorded == false or previous[3] then return REFUSED_KEY_REUSED end

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
if balanceFen == nil then return joinAnswer({ ANSWER_UNKNOWN_CARD, 0, '', nowMs, '' }) end
local status = account[2]
if status == 'L' then return record('D', joinAnswer({ ANSWER_CARD_LOST, balanceFen, '', nowMs, '' })) end
if status == 'F' then return record('D', joinAnswer({ ANSWER_CARD_FROZEN, balanceFen, '', nowMs, '' })) end
if status == 'C' then return record('D', joinAnswer({ ANSWER_CARD_CANCELLED, balanceFen, '', nowMs, '' })) end
if balanceFen < amountFen then return record('D', joinAnswer({ ANSWER_INSUFFICIENT_FUNDS, balanceFen, '', nowMs, '' })) end

local balanceAfterFen = rcall('HINCRBY', accountKey, 'bal', -amountFen)
if balanceAfterFen < 0 then
  return redis.error_reply('INVARIANT balance negative for ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
local entryId = appendJournal(journalKey, 'fee', cardNo, digits(amountFen), 'a:' .. cardNo, utilityParty,
  digits(balanceAfterFen), digits(version), terminalId, sequence, nowMs)
appendStatement(statementKey, nowMs, entryId, 'fee', digits(-amountFen), digits(balanceAfterFen), terminalId, sequence)
rcall('ZADD', pendingKey, nowMs, terminalId .. '|' .. sequence .. '|' .. cardNo)
rcall('HSET', requestKey, 'dbal', balanceAfterFen, 'dtx', entryId, 'dts', nowMs)
return record('P', joinAnswer({ ANSWER_PENDING, balanceAfterFen, entryId, nowMs, '' }))
