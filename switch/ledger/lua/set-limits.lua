--[[
  Set or clear a card's own password-free and daily limits (they override its holder type's).
  Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] noPinPerPaymentFen  -1 clears
  ARGV[2] noPinPerDayFen      -1 clears
  ARGV[3] dailySpendLimitFen  -1 clears (0 = no cap)

  Returns 1, or 0 when the account does not exist.
]]
local rcall = redis.call
local accountKey = KEYS[1]
if rcall('EXISTS', accountKey) == 0 then return 0 end
local fields = { 'lnp1', 'lnpd', 'ldl' }
for i = 1, 3 do
  if tonumber(ARGV[i]) < 0 then rcall('HDEL', accountKey, fields[i])
  else rcall('HSET', accountKey, fields[i], ARGV[i]) end
end
return 1
