--[[
  Set a card account's status (loss report / cancel, operator freeze / unfreeze) when its current
  status allows it. Moves no money. A card that becomes lost, frozen or cancelled moves its QR epoch
  on (`eq`), so every campus QR code issued before is dead at once, even after the status returns.

  KEYS[1] accountKey  {L:s}:acct:<card>
  KEYS[2] eventsKey   {L:s}:ev:<card>     (a bound e-card's page is told; see includes/event.lua)

  ARGV[1] status        A active, L lost, F frozen, C cancelled
  ARGV[2] allowedFrom   the statuses it may change from, e.g. 'AL'; '' = any
  ARGV[3] cardNo
  ARGV[4] nowMs
  ARGV[5] eventsChannel
  ARGV[6] eventTtlSec

  Returns {previousStatus, changed (1|0)}, or 0 when the account does not exist.

  A malformed ARGV (count or format) is answered with the error reply "ERR set-status: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'set-status'
local ANSWER_UNKNOWN_CARD = 0

local rcall = redis.call
local accountKey = KEYS[1]
local status = ARGV[1]
local allowedFrom = ARGV[2]

-- @include event
-- @include argv

local badArgv = argvCount(#ARGV == 6, '6')
  or argvOneOf(1, 'status', 'A', 'L', 'F', 'C') or argvId(3, 'cardNo') or argvInteger(4, 'nowMs', 0)
  or argvId(5, 'eventsChannel') or argvInteger(6, 'eventTtlSec', 1)
if badArgv then return badArgv end

local account = rcall('HMGET', accountKey, 'st', 'eu')
local previous = account[1]
if not previous then return ANSWER_UNKNOWN_CARD end
if allowedFrom ~= '' and not string.find(allowedFrom, previous, 1, true) then return { previous, 0 } end
if previous == status then return { previous, 1 } end
rcall('HSET', accountKey, 'st', status)
if status ~= 'A' then rcall('HINCRBY', accountKey, 'eq', 1) end
emitTrailingEvent(account[2], ARGV[3], { 'k', 'st', 'st', status, 'was', previous, 'ts', ARGV[4] })
return { previous, 1 }
