--[[
  Set a card account's status (loss report / cancel, operator freeze / unfreeze) when its current
  status allows it. Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] status        A active, L lost, F frozen, C cancelled
  ARGV[2] allowedFrom   the statuses it may change from, e.g. 'AL'; '' = any

  Returns {previousStatus, changed (1|0)}, or 0 when the account does not exist.
]]
local rcall = redis.call
local accountKey = KEYS[1]
local status = ARGV[1]
local allowedFrom = ARGV[2]

local previous = rcall('HGET', accountKey, 'st')
if not previous then return 0 end
if allowedFrom ~= '' and not string.find(allowedFrom, previous, 1, true) then return { previous, 0 } end
rcall('HSET', accountKey, 'st', status)
return { previous, 1 }
