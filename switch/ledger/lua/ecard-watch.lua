--[[
  A gateway with an open page of this card keeps it watched: the card's live events are announced on
  the events channel until `untilMs` (includes/event.lua). Moves no money; an account that does not
  exist is left alone (no hash is created).

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] untilMs     watched until (ms since the epoch); a later call moves it on

  Returns 1 when set, 0 when the account does not exist.
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'ew', ARGV[1])
return 1
