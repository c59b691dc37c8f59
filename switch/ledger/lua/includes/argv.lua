-- ARGV checks. Every script checks its own arguments before it reads or writes a key, so a bad call
-- changes nothing; scripts.ts (ARGV_RULES) checks the same before it sends, in the same words. Each
-- check answers an error reply, or nil when the argument is fine, so a script chains them with `or`
-- and returns the first problem:
--   local badArgv = argvCount(#ARGV == 9, '9') or argvId(1, 'cardNo') or argvInteger(2, 'amountFen', 1)
--   if badArgv then return badArgv end
-- The script names itself before this include: local SCRIPT = 'reverse'. No check loops over ARGV:
-- authorize.lua runs them on every payment.
local MAX_SAFE_INTEGER = 9007199254740991

local function argvError(problem)
  return redis.error_reply('ERR ' .. SCRIPT .. ': ' .. problem)
end

local function argvProblem(index, name, rule)
  return argvError('ARGV[' .. index .. '] ' .. name .. ' ' .. rule .. ', got "' .. string.sub(ARGV[index], 1, 40) .. '"')
end

-- `ok`: the script's own test of #ARGV; `expected` says what it wants.
local function argvCount(ok, expected)
  if ok then return nil end
  return argvError('ARGV has ' .. #ARGV .. ' arguments, expected ' .. expected)
end

local function argvId(index, name)
  if ARGV[index] ~= '' then return nil end
  return argvProblem(index, name, 'must not be empty')
end

-- A whole number written in decimal digits (no exponent, no spaces), min .. 2^53 - 1.
local function argvInteger(index, name, min)
  local text = ARGV[index]
  if string.find(text, '^%-?%d+$') then
    local value = tonumber(text)
    if value >= min and value <= MAX_SAFE_INTEGER then return nil end
  end
  if min == 1 then return argvProblem(index, name, 'must be a positive integer') end
  return argvProblem(index, name, 'must be an integer >= ' .. min)
end

local function argvNonZeroInteger(index, name)
  local text = ARGV[index]
  if string.find(text, '^%-?%d+$') then
    local value = tonumber(text)
    if value ~= 0 and math.abs(value) <= MAX_SAFE_INTEGER then return nil end
  end
  return argvProblem(index, name, 'must be a non-zero integer')
end

local function argvFlag(index, name)
  local text = ARGV[index]
  if text == '0' or text == '1' then return nil end
  return argvProblem(index, name, "must be '0' or '1'")
end

local function argvOneOf(index, name, ...)
  local text = ARGV[index]
  for i = 1, select('#', ...) do
    if text == select(i, ...) then return nil end
  end
  return argvProblem(index, name, 'must be one of ' .. table.concat({ ... }, ', '))
end
