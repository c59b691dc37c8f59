--[[
  Open a card account with its opening balance (import). Refuses to overwrite an existing account.

  KEYS[1] accountKey    {L:s}:acct:<card>
  KEYS[2] journalKey    {L:s}:journal
  KEYS[3] statementKey  {L:s}:stmt:<card>

  ARGV[1] cardNo
  ARGV[2] openingFen      integer >= 0
  ARGV[3] nowMs
  ARGV[4..] field, value pairs of the account's static data (ser, name, sno, ht, doct, docn, phone, pwd)

  Returns 1 opened, or 0 when the account already exists (nothing changed).

  A malformed ARGV (count or format) is answered with the error reply "ERR open-account: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'open-account'
local ANSWER_OPENED = 1
local ANSWER_ALREADY_EXISTS = 0

local rcall = redis.call
local accountKey = KEYS[1]
local journalKey = KEYS[2]
local statementKey = KEYS[3]
local cardNo = ARGV[1]
local openingFen = tonumber(ARGV[2])
local nowMs = ARGV[3]

-- @include answer
-- @include argv

local badArgv = argvCount(#ARGV >= 3 and #ARGV % 2 == 1, '3 then field, value pairs')
  or argvId(1, 'cardNo') or argvInteger(2, 'openingFen', 0) or argvInteger(3, 'nowMs', 0)
if badArgv then return badArgv end

if rcall('EXISTS', accountKey) == 1 then return ANSWER_ALREADY_EXISTS end
-- A hash this small is a listpack: Redis finds a field by reading the fields before it, and a field
-- the hash lacks by reading them all. So a payment's fields come first, the day's totals among them
-- from the start (`day`, empty until the first payment writes it), and the static data after
-- (issue 15: 3.5k instructions per payment, loadtest/RESULTS.md fifteenth session).
local fields = { 'bal', openingFen, 'st', 'A', 'ver', 1, 'day', '', 'sync', 0, 'wal', 0 }
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
rcall('HSET', accountKey, unpack(fields))
if openingFen > 0 then
  local entryId = appendJournal(journalKey, 'open', cardNo, digits(openingFen), 'x:opening', 'a:' .. cardNo,
    digits(openingFen), '1', '', '', nowMs)
  appendStatement(statementKey, nowMs, entryId, 'open', digits(openingFen), digits(openingFen), '', '')
end
return ANSWER_OPENED
