--[[
  Card password bookkeeping: wrong attempts per campus day, the lock after too many, checks in
  flight, and storing a new hash. The hash itself is computed and verified in the password worker
  pool, never here. Moves no money.

  An imported card has no hash (pwd is ''; pwdinit is '1'): its password is the initial one, which the
  switch compares with the one derived from docn (returned here). Its checks are taken, settled and
  counted exactly as any other; the first correct entry stores a full-cost hash through 'ok' with
  expectedHash '', which the stale test still guards (a hash stored meanwhile is never overwritten).

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
  ARGV[4] ('take', 'fail') nowMs
          ('ok', 'set') expectedHash: the hash the caller verified against ('' for a card that has none)
  ARGV[5] newHash       ('ok': the hash to store now, at full cost, for a card that had none or a lower-cost
                        one; '' for none; 'set': the new password's hash)
  ARGV[6] clearInitial  ('set') '1' marks the password as no longer the initial one

  Account fields: pwd ('' until an imported card's first correct entry; a missing field is an unknown
  account), pday/pfail (wrong attempts of the campus day), pinf/pints (checks in flight and
  when the last was taken), pwdinit, docn.

  Returns an array {code, attemptsLeft, storedHash, initialFlag, documentNumber}:
    code 1 done / state read (take: the check may go ahead; fail: attemptsLeft after it)
         2 locked (no attempts left today)
         3 stale: the stored hash changed since it was read (nothing changed; check again)
         4 busy: as many checks in flight as attempts left (nothing changed; try again shortly)
         5 unknown account

  A malformed ARGV (count or format) is answered with the error reply "ERR password: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'password'
local ANSWER_DONE = 1
local ANSWER_LOCKED = 2
local ANSWER_STALE = 3
local ANSWER_BUSY = 4
local ANSWER_UNKNOWN_CARD = 5

local rcall = redis.call
local accountKey = KEYS[1]
local op = ARGV[1]
local dayKey = ARGV[2]
local maxAttempts = tonumber(ARGV[3])
local IN_FLIGHT_STALE_MS = 60000
-- The campus day (UTC+8) in ms, and how far before its midnight a switch may see the next day already
-- begun on the account by another switch whose clock runs ahead.
local CAMPUS_UTC_OFFSET_MS = 28800000
local DAY_MS = 86400000
local DAY_END_SKEW_MS = 60000

-- @include argv

-- How many arguments each op takes (state, fail, release: none beyond the first three).
local ARGV_COUNT = { state = 3, take = 4, fail = 4, release = 3, ok = 5, set = 6 }
local badArgv = argvCount(#ARGV >= 3, '3 to 6 (by op)')
  or argvOneOf(1, 'op', 'state', 'take', 'fail', 'release', 'ok', 'set') or argvId(2, 'dayKey')
  or argvInteger(3, 'maxAttempts', 1) or argvCount(#ARGV == ARGV_COUNT[op], ARGV_COUNT[op] .. ' for ' .. op)
if badArgv then return badArgv end
if op == 'take' or op == 'fail' then badArgv = argvInteger(4, 'nowMs', 0) end
if op == 'set' then badArgv = argvId(5, 'newHash') or argvFlag(6, 'clearInitial') end
if badArgv then return badArgv end

local account = rcall('HMGET', accountKey, 'pwd', 'pday', 'pfail', 'pwdinit', 'docn', 'pinf', 'pints')
if account[1] == false then return { ANSWER_UNKNOWN_CARD, 0, '', '', '' } end
local failures = 0
if account[2] == dayKey then
  failures = tonumber(account[3]) or 0
elseif (op == 'take' or op == 'fail') and account[2] and account[2] > dayKey
    and (tonumber(ARGV[4]) + CAMPUS_UTC_OFFSET_MS) % DAY_MS >= DAY_MS - DAY_END_SKEW_MS then
  -- Another switch, its clock a little ahead, began the next campus day on this account while this
  -- one's clock is in the last minute of the day before: that day's count is this check's too. The
  -- count's day never goes back, or a lock of the new day would be lifted (and its attempts given again).
  dayKey = account[2]
  failures = tonumber(account[3]) or 0
end
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
  if left == 0 then return answer(ANSWER_LOCKED, 0) end
  return answer(ANSWER_DONE, left)
end
if op == 'take' then
  if left == 0 then return answer(ANSWER_LOCKED, 0) end
  local nowMs = tonumber(ARGV[4])
  if nowMs - (tonumber(account[7]) or 0) > IN_FLIGHT_STALE_MS then inFlight = 0 end
  if failures + inFlight >= maxAttempts then return answer(ANSWER_BUSY, left) end
  rcall('HSET', accountKey, 'pinf', inFlight + 1, 'pints', nowMs)
  return answer(ANSWER_DONE, left)
end
if op == 'fail' then
  settle()
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', failures + 1)
  if left - 1 <= 0 then return answer(ANSWER_LOCKED, 0) end
  return answer(ANSWER_DONE, left - 1)
end
if op == 'release' then
  settle()
  return answer(ANSWER_DONE, left)
end
if op == 'ok' then
  settle()
  if account[1] ~= ARGV[4] then return answer(ANSWER_STALE, left) end
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', 0)
  if ARGV[5] ~= '' then rcall('HSET', accountKey, 'pwd', ARGV[5]) end
  return answer(ANSWER_DONE, maxAttempts)
end

if left == 0 then return answer(ANSWER_LOCKED, 0) end
if account[1] ~= ARGV[4] then return answer(ANSWER_STALE, left) end
if op == 'set' then
  rcall('HSET', accountKey, 'pwd', ARGV[5], 'pday', dayKey, 'pfail', 0)
  if ARGV[6] == '1' then rcall('HSET', accountKey, 'pwdinit', '0') end
  return answer(ANSWER_DONE, maxAttempts)
end
return redis.error_reply('password.lua: unknown op ' .. tostring(op))
