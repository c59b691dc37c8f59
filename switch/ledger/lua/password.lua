--[[
  Card password bookkeeping: wrong attempts per campus day, the lock after too many, checks in
  flight, and storing a new hash. The hash itself is computed and verified in the password worker
  pool, never here. Moves no money.

  A check is taken BEFORE the password is verified ('take', in the same script that reads the
  counters) and settled after ('fail' or 'ok'). While checks are in flight they count against the
  attempts left, so a burst of parallel guesses gets no more verifications than the attempts left
  (design: security invariants); the ones beyond are told 'busy', not 'wrong', and may try again.
  A check that was taken and never settled (the switch died) stops counting after 60 s.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] op          'state' | 'take' | 'fail' | 'ok' | 'release' (a taken check that did not
                      happen: its place is given back, nothing counted) | 'set'
  ARGV[2] dayKey      YYYYMMDD in campus time
  ARGV[3] maxAttempts wrong attempts allowed per day
  ARGV[4] ('take') nowMs
          ('ok', 'set') expectedHash: the hash the caller verified against
  ARGV[5] newHash       ('ok': optional rehash at a higher cost, '' for none; 'set': the new password's hash)
  ARGV[6] clearInitial  ('set') '1' marks the password as no longer the initial one

  Account fields: pwd, pday/pfail (wrong attempts of the campus day), pinf/pints (checks in flight and
  when the last was taken), pwdinit, docn.

  Returns an array {code, attemptsLeft, storedHash, initialFlag, documentNumber}:
    code 1 done / state read (take: the check may go ahead; fail: attemptsLeft after it)
         2 locked (no attempts left today)
         3 stale: the stored hash changed since it was read (nothing changed; check again)
         4 busy: as many checks in flight as attempts left (nothing changed; try again shortly)
         5 unknown account
]]
local rcall = redis.call
local accountKey = KEYS[1]
local op = ARGV[1]
local dayKey = ARGV[2]
local maxAttempts = tonumber(ARGV[3])
local IN_FLIGHT_STALE_MS = 60000

local account = rcall('HMGET', accountKey, 'pwd', 'pday', 'pfail', 'pwdinit', 'docn', 'pinf', 'pints')
if account[1] == false then return { 5, 0, '', '', '' } end
local failures = 0
if account[2] == dayKey then failures = tonumber(account[3]) or 0 end
local inFlight = tonumber(account[6]) or 0
local left = maxAttempts - failures
if left < 0 then left = 0 end
local function answer(code, attemptsLeft)
  return { code, attemptsLeft, account[1], account[4] or '0', account[5] or '' }
end
-- Settling a check gives its place back (never below zero: a stale count may have been dropped).
local function settle()
  if inFlight > 0 then rcall('HSET', accountKey, 'pinf', inFlight - 1) end
end

if op == 'state' then
  if left == 0 then return answer(2, 0) end
  return answer(1, left)
end
if op == 'take' then
  if left == 0 then return answer(2, 0) end
  local nowMs = tonumber(ARGV[4])
  if nowMs - (tonumber(account[7]) or 0) > IN_FLIGHT_STALE_MS then inFlight = 0 end
  if failures + inFlight >= maxAttempts then return answer(4, left) end
  rcall('HSET', accountKey, 'pinf', inFlight + 1, 'pints', nowMs)
  return answer(1, left)
end
if op == 'fail' then
  settle()
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', failures + 1)
  if left - 1 <= 0 then return answer(2, 0) end
  return answer(1, left - 1)
end
if op == 'release' then
  settle()
  return answer(1, left)
end
if op == 'ok' then
  settle()
  if account[1] ~= ARGV[4] then return answer(3, left) end
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', 0)
  if ARGV[5] ~= '' then rcall('HSET', accountKey, 'pwd', ARGV[5]) end
  return answer(1, maxAttempts)
end

if left == 0 then return answer(2, 0) end
if account[1] ~= ARGV[4] then return answer(3, left) end
if op == 'set' then
  rcall('HSET', accountKey, 'pwd', ARGV[5], 'pday', dayKey, 'pfail', 0)
  if ARGV[6] == '1' then rcall('HSET', accountKey, 'pwdinit', '0') end
  return answer(1, maxAttempts)
end
return redis.error_reply('password.lua: unknown op ' .. tostring(op))
