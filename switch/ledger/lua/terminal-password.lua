--[[
  One terminal's wrong card passwords per clock hour, across all cards: the guard against a POS or a
  kiosk guessing 5 passwords a day on each of thousands of cards (the card's own lock, password.lua,
  only sees one card). Moves no money. Lives in the terminal's slot, apart from the card's, so the
  switch runs it before password.lua and settles it after the check (a script touches one slot).

  A check is taken BEFORE the card's ('take') and settled after the password was verified ('fail' for
  a wrong one, 'release' for a right one or a check that did not happen). Checks in flight count
  against the failures left, so a burst of parallel guesses over many cards gets no more
  verifications than the terminal's allowance. A check taken and never settled (the switch died)
  stops counting after 60 s, as in password.lua.

  KEYS[1] guardKey     {T:<terminal>}:pwguard  hash: hour, fail (wrong passwords of that hour),
                       inf/infts (checks in flight, when the last was taken)

  ARGV[1] op           'take' | 'fail' | 'release'
  ARGV[2] nowMs
  ARGV[3] hourKey      the clock hour of nowMs (floor(nowMs / 3600000))
  ARGV[4] maxFailures  wrong passwords allowed per hour
  ARGV[5] ttlMs        how long the guard is kept after its last change (longer than an hour)

  Returns {code, failuresLeft}:
    code 1 take: the check may go ahead / fail, release: settled
         2 take: limit reached (no failures left this hour; nothing changed)
         3 take: busy (as many checks in flight as failures left; nothing changed; try again shortly)
         4 fail: this failure reached the limit (the one answer per hour that the caller logs)

  A malformed ARGV (count or format) is answered with the error reply "ERR terminal-password: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'terminal-password'
local ANSWER_DONE = 1
local ANSWER_LIMIT = 2
local ANSWER_BUSY = 3
local ANSWER_REACHED_LIMIT = 4

local rcall = redis.call
local guardKey = KEYS[1]
local op = ARGV[1]
local nowMs = tonumber(ARGV[2])
local hourKey = ARGV[3]
local maxFailures = tonumber(ARGV[4])
local ttlMs = tonumber(ARGV[5])
local IN_FLIGHT_STALE_MS = 60000
-- A clock hour in ms, and how far before its end a switch may see the next hour already begun on the
-- terminal by another switch whose clock runs ahead.
local HOUR_MS = 3600000
local HOUR_END_SKEW_MS = 60000

-- @include argv

local badArgv = argvCount(#ARGV == 5, '5')
  or argvOneOf(1, 'op', 'take', 'fail', 'release') or argvInteger(2, 'nowMs', 0) or argvInteger(3, 'hourKey', 0)
  or argvInteger(4, 'maxFailures', 1) or argvInteger(5, 'ttlMs', 1)
if badArgv then return badArgv end

local guard = rcall('HMGET', guardKey, 'hour', 'fail', 'inf', 'infts')
local failures = 0
if guard[1] == hourKey then
  failures = tonumber(guard[2]) or 0
elseif guard[1] and tonumber(guard[1]) == tonumber(hourKey) + 1 and nowMs % HOUR_MS >= HOUR_MS - HOUR_END_SKEW_MS then
  -- Another switch, its clock a little ahead, began the next hour on this terminal while this one's
  -- clock is in the last minute of the hour before: that hour's count is this check's too. The count's
  -- hour never goes back, or the new hour's limit would be lifted.
  hourKey = guard[1]
  failures = tonumber(guard[2]) or 0
end
local inFlight = tonumber(guard[3]) or 0
local left = maxFailures - failures
if left < 0 then left = 0 end

local function settle()
  if inFlight > 0 then inFlight = inFlight - 1 end
  rcall('HSET', guardKey, 'inf', inFlight)
  rcall('PEXPIRE', guardKey, ttlMs)
end

if op == 'take' then
  if left == 0 then return { ANSWER_LIMIT, 0 } end
  if nowMs - (tonumber(guard[4]) or 0) > IN_FLIGHT_STALE_MS then inFlight = 0 end
  if failures + inFlight >= maxFailures then return { ANSWER_BUSY, left } end
  rcall('HSET', guardKey, 'hour', hourKey, 'fail', failures, 'inf', inFlight + 1, 'infts', nowMs)
  rcall('PEXPIRE', guardKey, ttlMs)
  return { ANSWER_DONE, left }
end
if op == 'fail' then
  settle()
  rcall('HSET', guardKey, 'hour', hourKey, 'fail', failures + 1)
  if failures + 1 == maxFailures then return { ANSWER_REACHED_LIMIT, 0 } end
  if left - 1 < 0 then return { ANSWER_DONE, 0 } end
  return { ANSWER_DONE, left - 1 }
end
if op == 'release' then
  settle()
  return { ANSWER_DONE, left }
end
return redis.error_reply('terminal-password.lua: unknown op ' .. tostring(op))
