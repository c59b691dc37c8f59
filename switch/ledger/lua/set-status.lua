--[[
  Set a card account's status (loss report / cancel, operator freeze / unfreeze) when its current
  status allows it. Moves no money. A card that becomes lost, frozen or cancelled moves its QR epoch
  on (`eq`), so every campus QR code issued before is dead at once, even after the status returns.

  A freeze remembers the status it came from in `fst` (written with `st`), and a frozen card asked to
  become active goes back to that status instead, clearing `fst`: unfreezing a card frozen from lost
  leaves it lost, so a freeze and an unfreeze never undo a loss report (only its cancellation with the
  holder's password, or a replacement card, does). A freeze of a card already frozen changes nothing,
  so a retried freeze keeps the status the first one remembered. A card frozen before `fst` existed
  has none; asked to become active it becomes active, as it did then (the answer says so: see below).
  Every other change out of frozen writes the status asked and clears `fst`.

  KEYS[1] accountKey  {L:s}:acct:<card>
  KEYS[2] eventsKey   {L:s}:ev:<card>     (a bound e-card's page is told; see includes/event.lua)

  ARGV[1] status        A active, L lost, F frozen, C cancelled
  ARGV[2] allowedFrom   the statuses it may change from, e.g. 'AL'; '' = any
  ARGV[3] cardNo
  ARGV[4] nowMs
  ARGV[5] eventsChannel
  ARGV[6] eventTtlSec

  Returns {previousStatus, changed (1|0), statusNow, remembered}, or 0 when the account does not exist.
  changed is 1 also when the card already had the status (nothing written); statusNow is the card's
  status after the call (the remembered one after an unfreeze); remembered is the `fst` the account
  held before the call ('' when none: on an unfreeze from frozen, a card frozen before `fst` existed).
  A `fst` that is not a status is the error reply "INVARIANT ..." and changes nothing.

  A malformed ARGV (count or format) is answered with the error reply "ERR set-status: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'set-status'
local ANSWER_UNKNOWN_CARD = 0
local FROZEN = 'F'
-- What a freeze may come from, and so what an unfreeze may go back to.
local REMEMBERABLE = { A = true, L = true, C = true }

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

local account = rcall('HMGET', accountKey, 'st', 'eu', 'fst')
local previous = account[1]
if not previous then return ANSWER_UNKNOWN_CARD end
local remembered = account[3] or ''
if remembered ~= '' and not REMEMBERABLE[remembered] then
  return redis.error_reply('INVARIANT account ' .. accountKey .. ' remembers a status before its freeze that is not one: ' .. remembered)
end
if allowedFrom ~= '' and not string.find(allowedFrom, previous, 1, true) then return { previous, 0, previous, remembered } end
if previous == status then return { previous, 1, previous, remembered } end
local statusNow = status
if previous == FROZEN and status == 'A' and remembered ~= '' then statusNow = remembered end
if statusNow == FROZEN then
  rcall('HSET', accountKey, 'st', statusNow, 'fst', previous)
else
  rcall('HSET', accountKey, 'st', statusNow)
  if previous == FROZEN then rcall('HDEL', accountKey, 'fst') end
end
if statusNow ~= 'A' then rcall('HINCRBY', accountKey, 'eq', 1) end
emitTrailingEvent(account[2], ARGV[3], { 'k', 'st', 'st', statusNow, 'was', previous, 'ts', ARGV[4] })
return { previous, 1, statusNow, remembered }
