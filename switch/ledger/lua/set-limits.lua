--[[
  Set or clear a card's own password-free and daily limits (they override its holder type's).
  Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] noPinPerPaymentFen  -1 clears
  ARGV[2] noPinPerDayFen      -1 clears
  ARGV[3] dailySpendLimitFen  -1 clears (0 = no cap)

  The three are one account field, `lim`: "<noPinPerPaymentFen>,<noPinPerDayFen>,<dailySpendLimitFen>",
  each empty when cleared, and no field when all three are (authorize.lua reads one field for the three:
  a field the account lacks costs each payment a scan of the account; issue 15). Ledgers before it kept
  them as the fields lnp1, lnpd, ldl: this script drops those, and the switch folds them into `lim` when
  it starts (fold-limits.lua).

  Returns 1, or 0 when the account does not exist.

  A malformed ARGV (count or format) is answered with the error reply "ERR set-limits: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'set-limits'
local ANSWER_SET = 1
local ANSWER_UNKNOWN_CARD = 0

local rcall = redis.call
local accountKey = KEYS[1]

-- @include argv

local badArgv = argvCount(#ARGV == 3, '3')
  or argvInteger(1, 'noPinPerPaymentFen', -1) or argvInteger(2, 'noPinPerDayFen', -1) or argvInteger(3, 'dailySpendLimitFen', -1)
if badArgv then return badArgv end

if rcall('EXISTS', accountKey) == 0 then return ANSWER_UNKNOWN_CARD end
local parts = { '', '', '' }
local set = false
for i = 1, 3 do
  local fen = tonumber(ARGV[i])
  if fen >= 0 then
    parts[i] = string.format('%d', fen)
    set = true
  end
end
if set then rcall('HSET', accountKey, 'lim', table.concat(parts, ','))
else rcall('HDEL', accountKey, 'lim') end
rcall('HDEL', accountKey, 'lnp1', 'lnpd', 'ldl')
return ANSWER_SET
