--[[
  Replace a card: the account (and its balance, password, limits) moves to a new physical card serial.
  The old serial is dead from this moment (authorize.lua compares the presented serial with 'ser').
  A lost account becomes active again; the new card has not been tapped yet, so it is not synced.
  The QR epoch moves on: campus QR codes issued before the replacement are dead. Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] newSerial

  Returns the old serial, or 0 when the account does not exist.

  A malformed ARGV (count or format) is answered with the error reply "ERR replace-card: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'replace-card'
local ANSWER_UNKNOWN_CARD = 0

local rcall = redis.call
local accountKey = KEYS[1]
local newSerial = ARGV[1]

-- @include argv

local badArgv = argvCount(#ARGV == 1, '1') or argvId(1, 'newSerial')
if badArgv then return badArgv end

local account = rcall('HMGET', accountKey, 'ser', 'st')
if account[1] == false then return ANSWER_UNKNOWN_CARD end
rcall('HSET', accountKey, 'ser', newSerial, 'sync', '0')
rcall('HINCRBY', accountKey, 'eq', 1)
if account[2] == 'L' then rcall('HSET', accountKey, 'st', 'A') end
return account[1]
