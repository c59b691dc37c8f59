--[[
  Replace a card: the account (and its balance, password, limits) moves to a new physical card serial.
  The old serial is dead from this moment (authorize.lua compares the presented serial with 'ser').
  A lost account becomes active again; the new card has not been tapped yet, so it is not synced. A frozen
  account stays frozen, but a freeze that came from lost (`fst`, set-status.lua) now goes back to active
  when lifted: the lost card is dead, so the loss report has done its work.
  The QR epoch moves on: campus QR codes issued before the replacement are dead. Moves no money.

  Idempotent by the card office's request id. Every answer for an existing account is recorded in the
  card's replacements hash (field requestId, value "<newSerial>|<code>|<oldSerial>"), kept as long as the
  account (no expiry: one field per replacement request of the card, a handful in a card's life). A retry
  of the request, at any later time (after later replacements of the same card too), answers the first
  answer again and changes nothing: a replacement is answered as a retry (code 2) with its old serial, so
  the new card, maybe tapped meanwhile, stays synced, and QR codes issued since stay valid. The same id
  with another new serial is refused. The serial replaced is also kept in 'oser': a NEW request id that
  asks for the serial the card already has from a replacement (the operator pressed twice and the client
  made a second id) answers that replacement's old serial (code 2) and changes nothing but its record.

  KEYS[1] accountKey       {L:s}:acct:<card>
  KEYS[2] replacementsKey  {L:s}:rpl:<card>   hash: requestId -> "<newSerial>|<code>|<oldSerial>"

  ARGV[1] requestId
  ARGV[2] newSerial

  Returns {code, oldSerial}:
    code 0 the account does not exist (not recorded)
         1 replaced: oldSerial is the serial that was the card's
         2 a retry: the card's serial already is (or was made by this request) newSerial, from the
           replacement of oldSerial (nothing written but a new request id's record)
         3 the card's serial already is newSerial and no replacement made it so (nothing written but the record)
  Or a number (nothing written):
    -1 the request id was used before for this card with another new serial
    -2 the card is fenced off newSerial ('!<newSerial>' in the replacements hash, serial-fence.lua): its
       claim of that serial went stale and another card's replacement took the serial over

  A malformed ARGV (count or format) is answered with the error reply "ERR replace-card: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'replace-card'
local ANSWER_UNKNOWN_CARD = 0
local ANSWER_REPLACED = 1
local ANSWER_REPLAYED = 2
local ANSWER_SERIAL_CURRENT = 3
local REFUSED_KEY_REUSED = -1
local REFUSED_SERIAL_TAKEN = -2

local rcall = redis.call
local accountKey = KEYS[1]
local replacementsKey = KEYS[2]
local requestId = ARGV[1]
local newSerial = ARGV[2]

-- @include argv

local badArgv = argvCount(#ARGV == 2, '2') or argvId(1, 'requestId') or argvId(2, 'newSerial')
if badArgv then return badArgv end

local recorded = rcall('HGET', replacementsKey, requestId)
if recorded then
  local serial, code, oldSerial = string.match(recorded, '^([^|]*)|(%d)|(.*)$')
  if serial == nil then
    return redis.error_reply('INVARIANT replacement record of ' .. requestId .. ' is "' .. string.sub(recorded, 1, 60) .. '"')
  end
  if serial ~= newSerial then return REFUSED_KEY_REUSED end
  if tonumber(code) == ANSWER_SERIAL_CURRENT then return { ANSWER_SERIAL_CURRENT, '' } end
  return { ANSWER_REPLAYED, oldSerial }
end

local function decide(code, oldSerial)
  rcall('HSET', replacementsKey, requestId, newSerial .. '|' .. code .. '|' .. oldSerial)
  return { code, oldSerial }
end

local account = rcall('HMGET', accountKey, 'ser', 'st', 'oser', 'fst')
if account[1] == false then return { ANSWER_UNKNOWN_CARD, '' } end
-- A takeover fenced this card off the serial (its stale claim was given to another card): never moved onto it.
if rcall('HEXISTS', replacementsKey, '!' .. newSerial) == 1 then return REFUSED_SERIAL_TAKEN end
if account[1] == newSerial then
  if account[3] then return decide(ANSWER_REPLAYED, account[3]) end
  return decide(ANSWER_SERIAL_CURRENT, '')
end
rcall('HSET', accountKey, 'ser', newSerial, 'sync', '0', 'oser', account[1])
rcall('HINCRBY', accountKey, 'eq', 1)
if account[2] == 'L' then rcall('HSET', accountKey, 'st', 'A') end
if account[2] == 'F' and account[4] == 'L' then rcall('HSET', accountKey, 'fst', 'A') end
return decide(ANSWER_REPLACED, account[1])
