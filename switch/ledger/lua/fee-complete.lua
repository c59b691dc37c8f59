--[[
  Last step of a delivered utility fee: store the provider's receipt in the request record, so a
  retry answers "approved" without calling the provider again, and drop the request from the shard's
  pending index. Moves no money (fee-debit.lua took it).

  KEYS[1] requestKey   {L:s}:req:<term>:<seq>
  KEYS[2] pendingKey   {L:s}:feepend
  KEYS[3] accountKey   {L:s}:acct:<card>   (read: is the card's e-card bound?)

  ARGV[1] fingerprint  must be the debit's
  ARGV[2] receipt      the provider's receipt number (no '|')
  ARGV[3] pendingMember '<term>|<seq>|<card>'
  ARGV[4] cardNo
  Last: KEYS[4] eventsKey {L:s}:ev:<card>, ARGV[5] eventsChannel, ARGV[6] eventTtlSec (a bound e-card's
  page is told; see includes/event.lua).

  Returns one string, the final answer in fee-debit.lua's format:
    "1|<balanceAfterDebitFen>|<debitTxnId>|<debitMs>|<receipt>"   (recorded; returned again on a retry)
  Or a number (nothing changed):
    -1 the record is for a different request
    -2 no such request (never debited, or expired)
    -3 the request was given back or declined: a receipt for it breaks the provider's contract

  A malformed ARGV (count or format) is answered with the error reply "ERR fee-complete: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'fee-complete'
local ANSWER_DELIVERED = 1
local REFUSED_OTHER_REQUEST = -1
local REFUSED_NO_RECORD = -2
local REFUSED_NOT_PENDING = -3

local rcall = redis.call
local requestKey = KEYS[1]
local pendingKey = KEYS[2]
local fingerprint = ARGV[1]
local receipt = ARGV[2]
local pendingMember = ARGV[3]

-- @include answer
-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 6, '6')
  or argvId(1, 'fingerprint') or argvId(2, 'receipt') or argvId(3, 'pendingMember') or argvId(4, 'cardNo')
  or argvId(5, 'eventsChannel') or argvInteger(6, 'eventTtlSec', 1)
if badArgv then return badArgv end

local request = requestFields(requestKey, 'pfp', 'pans', 'pst', 'dbal', 'dtx', 'dts', 'amt', 'up')
if not request[1] then return REFUSED_NO_RECORD end
if request[1] ~= fingerprint then return REFUSED_OTHER_REQUEST end
if request[3] == 'A' then return request[2] end
if request[3] ~= 'P' then return REFUSED_NOT_PENDING end

local answer = joinAnswer({ ANSWER_DELIVERED, request[4], request[5], request[6], receipt })
rcall('HSET', requestKey, 'pst', 'A', 'pans', answer, 'rcpt', receipt)
rcall('ZREM', pendingKey, pendingMember)
emitTrailingEvent(rcall('HGET', KEYS[3], 'eu'), ARGV[4], { 'k', 'fee', 'a', request[7], 'b', request[4], 'm', request[8],
  'rcpt', receipt, 'tx', request[5], 'ts', request[6] }, KEYS[3])
-- Final now: the record expires like any other request record.
rcall('EXPIRE', requestKey, tonumber(rcall('HGET', requestKey, 'ttl') or '604800'))
return answer
