--[[
  Set a card account's status (operator freeze / unfreeze, loss report / cancel). Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] status   A active, L lost, F frozen, C cancelled

  Returns the previous status, or 0 when the account does not exist.
]]
local rcall = redis.call
local accountKey = KEYS[1]
local status = ARGV[1]

local previous = rcall('HGET', accountKey, 'st')
if not previous then return 0 end
rcall('HSET', accountKey, 'st', status)
return previous
