--[[
  Set or clear a card's own password-free and daily limits (they override its holder type's).
  Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] noPinPerPaymentFen  -1 clears
  ARGV[2] noPinPerDayFen      -1 clears
  ARGV[3] dailySpendLimitFen  -1 clears (0 = no cap)

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
local fields = { 'lnp1', 'lnpd', 'ldl' }
for i = 1, 3 do
  if tonumber(ARGV[i]) < 0 then rcall('HDEL', accountKey, fields[i])
  else rcall('HSET', accountKey, fields[i], ARGV[i]) end
end
return ANSWER_SET
