--[[
  Register a new terminal (an operator's RegisterTerminal or terminal import). Moves no money.

  Why: registering was "is the id free?" then HSET, two steps. Two operators importing the same
  terminal id at once both found it free and both wrote it, the second overwriting the first's secret
  (its terminal locked out, both told "imported"); and a switch's registry cache, which remembers an
  absent terminal for TERMINAL_CACHE_MS, let an import overwrite a terminal registered meanwhile,
  re-enabling it if it had been disabled. Here the check and the write are one step.

  KEYS[1] terminalKey  <prefix>:term:<terminalId>   hash: kind, merchant, location, enabled, secretHash

  ARGV[1] kind
  ARGV[2] merchantId
  ARGV[3] location
  ARGV[4] secretHash

  Returns 1 registered (enabled), or 0 when the terminal is already registered (nothing changed).

  A malformed ARGV (count or format) is answered with the error reply "ERR terminal-create: ..." before
  any key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'terminal-create'
local ANSWER_CREATED = 1
local ANSWER_ALREADY_REGISTERED = 0

local rcall = redis.call
local terminalKey = KEYS[1]

-- @include argv

local badArgv = argvCount(#ARGV == 4, '4') or argvId(1, 'kind') or argvId(2, 'merchantId') or argvId(3, 'location')
  or argvId(4, 'secretHash')
if badArgv then return badArgv end

if rcall('EXISTS', terminalKey) == 1 then return ANSWER_ALREADY_REGISTERED end
rcall('HSET', terminalKey, 'kind', ARGV[1], 'merchant', ARGV[2], 'location', ARGV[3], 'enabled', '1', 'secretHash', ARGV[4])
return ANSWER_CREATED
