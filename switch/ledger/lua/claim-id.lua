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
]]
local rcall = redis.call
local claimKey = KEYS[1]
local op = ARGV[1]
local cardNo = ARGV[2]

local holder = rcall('GET', claimKey)
if op == 'claim' then
  if holder == cardNo then return 1 end
  if holder then return 0 end
  rcall('SET', claimKey, cardNo, 'EX', tonumber(ARGV[3]))
  return 2
end
if op == 'release' then
  if holder ~= cardNo then return 0 end
  rcall('DEL', claimKey)
  return 1
end
return redis.error_reply('claim-id.lua: unknown op ' .. tostring(op))
