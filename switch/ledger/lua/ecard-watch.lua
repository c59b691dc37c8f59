--[[
  A gateway with an open page of this card keeps it watched: the card's live events are announced on
  the events channel until `untilMs` (includes/event.lua). Moves no money; an account that does not
  exist is left alone (no hash is created).

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] untilMs     watched until (ms since the epoch); a later call moves it on

  Returns 1 when set, 0 when the account does not exist.

  A malformed ARGV (count or format) is answered with the error reply "ERR ecard-watch: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'ecard-watch'
local ANSWER_WATCHED = 1
local ANSWER_UNKNOWN_CARD = 0

-- @include argv

local badArgv = argvCount(#ARGV == 1, '1') or argvInteger(1, 'untilMs', 0)
if badArgv then return badArgv end

if redis.call('EXISTS', KEYS[1]) == 0 then return ANSWER_UNKNOWN_CARD end
redis.call('HSET', KEYS[1], 'ew', ARGV[1])
return ANSWER_WATCHED
