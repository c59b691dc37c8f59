--[[
  The recovery sweep (domain/fees.ts recoverPendingFees) asked the provider about a pending fee and got
  no final word (pay and cancel both unanswered or failed): the fee is looked at again later. Its place
  in the shard's pending index moves to ARGV[4] (the next look), so the fees the provider cannot answer
  about do not keep taking the sweep's first places of the shard (it reads the index oldest first, a
  bounded number): a younger fee whose provider answers is reached too. `funk` on the record counts such
  looks; from ARGV[5] on the fee needs an operator (`fatt`, when it first did): it stays pending and
  swept (with the longest wait), and `npm run cli -- fee-attention` lists it. Moves no money.

  Only moves an index entry that is there (ZADD XX): a fee completed (fee-complete.lua) or given back
  (fee-giveback.lua) while the provider was being asked is off the index and stays off.

  KEYS[1] requestKey    {L:s}:req:<term>:<seq>   the fee's record (fee-debit.lua): pfp, pst; funk, fatt
  KEYS[2] pendingKey    {L:s}:feepend            zset: score = the next look (ms), member '<term>|<seq>|<card>'

  ARGV[1] fingerprint    must be the debit's
  ARGV[2] pendingMember  '<term>|<seq>|<card>'
  ARGV[3] nowMs
  ARGV[4] nextScoreMs    the entry's new score
  ARGV[5] maxUnknown     from this many looks without a final word, the fee needs an operator

  Returns a number:
    1 requeued         moved to ARGV[4], `funk` counted
    2 needs attention  moved and counted, and this look reached ARGV[5]: `fatt` set now
    3 in attention     moved and counted; it needed an operator before
    4 settled          not in the pending index (completed or given back meanwhile): nothing changed
    5 broken           indexed, but the record is missing, another request's or not pending: only the
                       entry is moved (never added), so it does not hold the sweep's places either

  A malformed ARGV (count or format) is answered with the error reply "ERR fee-requery: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'fee-requery'
local ANSWER_REQUEUED = 1
local ANSWER_NEEDS_ATTENTION = 2
local ANSWER_IN_ATTENTION = 3
local ANSWER_SETTLED = 4
local ANSWER_BROKEN = 5

local rcall = redis.call
local requestKey = KEYS[1]
local pendingKey = KEYS[2]
local fingerprint = ARGV[1]
local pendingMember = ARGV[2]

-- @include answer
-- @include argv

local badArgv = argvCount(#ARGV == 5, '5')
  or argvId(1, 'fingerprint') or argvId(2, 'pendingMember') or argvInteger(3, 'nowMs', 0)
  or argvInteger(4, 'nextScoreMs', 0) or argvInteger(5, 'maxUnknown', 1)
if badArgv then return badArgv end

if not rcall('ZSCORE', pendingKey, pendingMember) then return ANSWER_SETTLED end
local request = requestFields(requestKey, 'pfp', 'pst', 'fatt')
if request[1] ~= fingerprint or request[2] ~= 'P' then
  rcall('ZADD', pendingKey, 'XX', ARGV[4], pendingMember)
  return ANSWER_BROKEN
end

local unknown = rcall('HINCRBY', requestKey, 'funk', 1)
rcall('ZADD', pendingKey, 'XX', ARGV[4], pendingMember)
if unknown < tonumber(ARGV[5]) then return ANSWER_REQUEUED end
if request[3] then return ANSWER_IN_ATTENTION end
rcall('HSET', requestKey, 'fatt', ARGV[3])
return ANSWER_NEEDS_ATTENTION
