--[[
  Card password bookkeeping: wrong attempts per campus day, the lock after too many, and storing a
  new hash. The hash itself is computed and verified in the password worker pool, never here.
  Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] op          'state' | 'take' | 'ok' | 'set' ('fail' counts one wrong attempt; unused by the switch)
  ARGV[2] dayKey      YYYYMMDD in campus time
  ARGV[3] maxAttempts wrong attempts allowed per day
  ARGV[4] expectedHash  ('ok', 'set') the hash the caller verified against
  ARGV[5] newHash       ('ok': optional rehash at a higher cost, '' for none; 'set': the new password's hash)
  ARGV[6] clearInitial  ('set') '1' marks the password as no longer the initial one

  An attempt is taken BEFORE the password is checked ('take' counts it as wrong, in the same script
  that reads the counter), and 'ok' gives it back once the worker found the password right: so a burst
  of parallel guesses gets no more checks than the attempts left (design: security invariants).

  Returns an array {code, attemptsLeft, storedHash, initialFlag, documentNumber}:
    code 1 done / state read     5 unknown account
         2 locked (no attempts left today)
         3 stale: the stored hash changed since it was read (nothing changed; check again)
]]
local rcall = redis.call
local accountKey = KEYS[1]
local op = ARGV[1]
local dayKey = ARGV[2]
local maxAttempts = tonumber(ARGV[3])

local account = rcall('HMGET', accountKey, 'pwd', 'pday', 'pfail', 'pwdinit', 'docn')
if account[1] == false then return { 5, 0, '', '', '' } end
local failures = 0
if account[2] == dayKey then failures = tonumber(account[3]) or 0 end
local left = maxAttempts - failures
if left < 0 then left = 0 end
local function answer(code, attemptsLeft)
  return { code, attemptsLeft, account[1], account[4] or '0', account[5] or '' }
end

if op == 'state' then
  if left == 0 then return answer(2, 0) end
  return answer(1, left)
end
-- 'ok' follows a 'take' that was granted (it may have taken the last attempt): no lock check here.
if op == 'ok' then
  if account[1] ~= ARGV[4] then return answer(3, left) end
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', 0)
  if ARGV[5] ~= '' then rcall('HSET', accountKey, 'pwd', ARGV[5]) end
  return answer(1, maxAttempts)
end
if left == 0 then return answer(2, 0) end

-- attemptsLeft answered: what is left if this attempt turns out wrong.
if op == 'take' then
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', failures + 1)
  return answer(1, left - 1)
end

if op == 'fail' then
  rcall('HSET', accountKey, 'pday', dayKey, 'pfail', failures + 1)
  if left - 1 == 0 then return answer(2, 0) end
  return answer(1, left - 1)
end

if account[1] ~= ARGV[4] then return answer(3, left) end
if op == 'set' then
  rcall('HSET', accountKey, 'pwd', ARGV[5], 'pday', dayKey, 'pfail', 0)
  if ARGV[6] == '1' then rcall('HSET', accountKey, 'pwdinit', '0') end
  return answer(1, maxAttempts)
end
return redis.error_reply('password.lua: unknown op ' .. tostring(op))
