--[[
  Read a card for a POS display and complete its card sync (e-card activation) when the
  presented serial is the account's current one. Moves no money.

  KEYS[1] accountKey  {L:s}:acct:<card>

  ARGV[1] presentedSerial   '' when the credential is not a card tap

  Returns an array {code, balanceFen, smallWalletFen, status, synced, name, holderType}:
    code 1 found   5 unknown account   6 card replaced (serial is not the current one)

  A malformed ARGV (count or format) is answered with the error reply "ERR inquire: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'inquire'
local ANSWER_FOUND = 1
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_REPLACED = 6

local rcall = redis.call
local accountKey = KEYS[1]
local presentedSerial = ARGV[1]

-- @include argv

local badArgv = argvCount(#ARGV == 1, '1')
if badArgv then return badArgv end

local account = rcall('HMGET', accountKey, 'bal', 'wal', 'st', 'sync', 'name', 'ht', 'ser')
if account[1] == false then return { ANSWER_UNKNOWN_CARD, 0, 0, '', 0, '', '' } end
if presentedSerial ~= '' and account[7] ~= presentedSerial then
  return { ANSWER_CARD_REPLACED, tonumber(account[1]), tonumber(account[2] or '0'), account[3], 0, account[5], account[6] }
end
local synced = account[4]
if presentedSerial ~= '' and synced ~= '1' then
  rcall('HSET', accountKey, 'sync', '1')
  synced = '1'
end
return { ANSWER_FOUND, tonumber(account[1]), tonumber(account[2] or '0'), account[3], tonumber(synced or '0'), account[5], account[6] }
