--[[
  Replace a card: the account (and its balance, password, limits) moves to a new physical card serial.
  The old serial is dead from this moment (authorize.lua compares the presented serial with 'ser').
  A lost account becomes active again; the new card has not been tapped yet, so it is not synced. A frozen
  account stays frozen, but a freeze that came from lost (`fst`, set-status.lua) now goes back to active
  when lifted: the lost card is dead, so the loss report has done its work.
  The QR epoch moves on: campus QR codes issued before the replacement are dead. Moves no money.
  The serial replaced is kept in 'oser', so a retry of the replacement (the card's serial is already
  newSerial: the first answer was lost to a timeout, the operator pressed twice) answers the first one's
  old serial again and changes nothing: the new card, maybe tapped meanwhile, stays synced, and QR codes
  issued since stay valid.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] newSerial

  Returns {code, oldSerial}:
    code 0 the account does not exist
         1 replaced: oldSerial is the serial that was the card's
         2 a retry: the card's serial already is newSerial, from the replacement of oldSerial (nothing written)
         3 the card's serial already is newSerial and no replacement made it so (nothing written)

  A malformed ARGV (count or format) is answered with the error reply "ERR replace-card: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'replace-card'
local ANSWER_UNKNOWN_CARD = 0
local ANSWER_REPLACED = 1
local ANSWER_REPLAYED = 2
local ANSWER_SERIAL_CURRENT = 3

local rcall = redis.call
local accountKey = KEYS[1]
local newSerial = ARGV[1]

-- @include argv

local badArgv = argvCount(#ARGV == 1, '1') or argvId(1, 'newSerial')
if badArgv then return badArgv end

local account = rcall('HMGET', accountKey, 'ser', 'st', 'oser', 'fst')
if account[1] == false then return { ANSWER_UNKNOWN_CARD, '' } end
if account[1] == newSerial then
  if account[3] then return { ANSWER_REPLAYED, account[3] } end
  return { ANSWER_SERIAL_CURRENT, '' }
end
rcall('HSET', accountKey, 'ser', newSerial, 'sync', '0', 'oser', account[1])
rcall('HINCRBY', accountKey, 'eq', 1)
if account[2] == 'L' then rcall('HSET', accountKey, 'st', 'A') end
if account[2] == 'F' and account[4] == 'L' then rcall('HSET', accountKey, 'fst', 'A') end
return { ANSWER_REPLACED, account[1] }
