--[[
  A lease on one follow-up (a code payment or a code refund the switch is still deciding with its
  channel): the switch instance that holds it is the only one querying, settling or giving back that
  payment now. Moves no money. With several switches on one Redis, the loser of 'take' leaves the
  payment to the winner; a crashed winner's lease expires and another switch takes it over.

  KEYS[1] leaseKey   <prefix>:{CP}:lease:<member>   string: the holder's instance id, with an expiry

  ARGV[1] op 'take' | 'release'   ARGV[2] holder (the instance id)   ARGV[3] leaseMs (take: how long)

  Returns:
    take:    1 taken (now, or renewed by its holder)   0 held by another instance (nothing changed)
    release: 1 released   0 not this holder's (expired, or taken over; nothing changed)

  A malformed ARGV (count or format) is answered with the error reply "ERR follow-up-lease: ..." before
  any key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'follow-up-lease'
local ANSWER_TAKEN = 1
local ANSWER_HELD_BY_ANOTHER = 0
local ANSWER_RELEASED = 1
local ANSWER_NOT_THIS_HOLDERS = 0

-- @include argv

local badArgv = argvCount(#ARGV == 3, '3') or argvOneOf(1, 'op', 'take', 'release') or argvId(2, 'holder')
  or argvInteger(3, 'leaseMs', 1)
if badArgv then return badArgv end

local leaseKey = KEYS[1]
local holder = redis.call('GET', leaseKey)
if ARGV[1] == 'take' then
  if holder and holder ~= ARGV[2] then return ANSWER_HELD_BY_ANOTHER end
  redis.call('SET', leaseKey, ARGV[2], 'PX', tonumber(ARGV[3]))
  return ANSWER_TAKEN
end
if holder ~= ARGV[2] then return ANSWER_NOT_THIS_HOLDERS end
redis.call('DEL', leaseKey)
return ANSWER_RELEASED
