--[[
  Folds a card's own limits as ledgers before issue 15 kept them (the account fields lnp1, lnpd, ldl)
  into the one field that set-limits.lua writes and authorize.lua reads:
  `lim` = "<noPinPerPaymentFen>,<noPinPerDayFen>,<dailySpendLimitFen>", each empty when not set.
  Run by the switch at start for every account until the ledger's meta says the fold is done
  (ledger/limits-fold.ts). Moves no money; running it again changes nothing.

  KEYS[1] accountKey  {L:s}:acct:<card>

  No ARGV.

  Returns 1 folded (the old fields are gone, `lim` holds them unless it was written since), or 0 when
  the account has none of the old fields (or does not exist: no hash is created).

  A value of an old field that is not digits is answered with the error reply "INVARIANT ..." and
  nothing is changed: the operator sets that card's limits again (a person has to say what they are).
  A malformed ARGV (count) is answered with the error reply "ERR fold-limits: ..." before any key is
  read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'fold-limits'
local ANSWER_FOLDED = 1
local ANSWER_NOTHING_TO_FOLD = 0

local rcall = redis.call
local accountKey = KEYS[1]

-- @include argv

local badArgv = argvCount(#ARGV == 0, '0')
if badArgv then return badArgv end

local old = rcall('HMGET', accountKey, 'lnp1', 'lnpd', 'ldl', 'lim')
if not old[1] and not old[2] and not old[3] then return ANSWER_NOTHING_TO_FOLD end
local parts = {}
for i = 1, 3 do
  local value = old[i] or ''
  if value ~= '' and not string.find(value, '^%d+$') then
    return redis.error_reply('INVARIANT account ' .. accountKey .. ' has a card limit that is not a number of fen: '
      .. ({ 'lnp1', 'lnpd', 'ldl' })[i] .. '=' .. value .. ' (set the card\'s limits again)')
  end
  if value ~= '' then value = string.format('%d', tonumber(value)) end
  parts[i] = value
end
-- A `lim` already there was written by set-limits.lua, after the old fields: it stands.
if not old[4] then rcall('HSET', accountKey, 'lim', table.concat(parts, ',')) end
rcall('HDEL', accountKey, 'lnp1', 'lnpd', 'ldl')
return ANSWER_FOLDED
