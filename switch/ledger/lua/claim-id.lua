--[[
  Claim a ledger-wide idempotency id (a channel order id, an operator's adjustment id) for one card,
  or release a claim this card made. Moves no money.

  Why: the id's record (answer, fingerprint) lives in the card's shard, next to the account it
  changes, so one script can check and credit atomically. A second card in another shard would not
  see that record; this claim, keyed by the id alone, makes sure one id only ever moves money on one
  card. It is taken before the money script runs and released when that script refused (a refused
  request changes nothing).

  KEYS[1] claimKey   <prefix>:claim:<namespace>:<id>   string: the card number holding the id

  ARGV[1] op         'claim' | 'release'
  ARGV[2] cardNo
  ARGV[3] ttlSec     (claim) how long the claim lasts; the id's record lasts as long

  Returns:
    claim:   2 claimed now      1 already this card's      0 held by another card (nothing changed)
    release: 1 released         0 not this card's claim (nothing changed)

  A malformed ARGV (count or format) is answered with the error reply "ERR claim-id: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'claim-id'
local ANSWER_CLAIMED_NOW = 2
local ANSWER_ALREADY_THIS_CARDS = 1
local ANSWER_HELD_BY_ANOTHER = 0
local ANSWER_RELEASED = 1
local ANSWER_NOT_THIS_CARDS = 0

local rcall = redis.call
local claimKey = KEYS[1]
local op = ARGV[1]
local cardNo = ARGV[2]

-- @include argv

local badArgv = argvCount(#ARGV >= 1, '3 for claim, 2 for release') or argvOneOf(1, 'op', 'claim', 'release')
if badArgv then return badArgv end
if op == 'claim' then
  badArgv = argvCount(#ARGV == 3, '3 for claim') or argvId(2, 'cardNo') or argvInteger(3, 'ttlSec', 1)
else
  badArgv = argvCount(#ARGV == 2, '2 for release') or argvId(2, 'cardNo')
end
if badArgv then return badArgv end

local holder = rcall('GET', claimKey)
if op == 'claim' then
  if holder == cardNo then return ANSWER_ALREADY_THIS_CARDS end
  if holder then return ANSWER_HELD_BY_ANOTHER end
  rcall('SET', claimKey, cardNo, 'EX', tonumber(ARGV[3]))
  return ANSWER_CLAIMED_NOW
end
if holder ~= cardNo then return ANSWER_NOT_THIS_CARDS end
rcall('DEL', claimKey)
return ANSWER_RELEASED
