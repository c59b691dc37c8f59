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
]]
local rcall = redis.call
local accountKey = KEYS[1]
local journalKey = KEYS[2]
local statementKey = KEYS[3]
local cardNo = ARGV[1]
local openingFen = tonumber(ARGV[2])
local nowMs = ARGV[3]

-- @include answer

if rcall('EXISTS', accountKey) == 1 then return 0 end
local fields = { 'bal', openingFen, 'wal', 0, 'st', 'A', 'ver', 1, 'sync', 0 }
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
rcall('HSET', accountKey, unpack(fields))
if openingFen > 0 then
  local entryId = appendJournal(journalKey, 'open', cardNo, openingFen, 'x:opening', 'a:' .. cardNo,
    openingFen, 1, '', '', nowMs)
  appendStatement(statementKey, nowMs, entryId, 'open', openingFen, openingFen, '', '')
end
return 1
