--[[
  The ledger's side of a paid third-party (Alipay / WeChat) code payment, in the payer's card's shard:
  a journal entry and a statement line of the card, exactly once per payment ('pay'), and once more if
  the payment is reversed afterwards ('unpay'). The money came from outside and went to the merchant
  (x:ch:<CHANNEL> -> m:<merchant>, and back for a reversal): the account's balance, wallet and version
  do not move; `b` and `v` of the entry are the account's unchanged ones (the audit skips entries that
  touch no account: they are outside to outside, net zero).

  KEYS[1] paidKey       {L:s}:cpaid:<outTradeNo>  hash: tx (the payment's entry id), rtx (the reversal's), card, amt
  KEYS[2] accountKey    {L:s}:acct:<card>
  KEYS[3] journalKey    {L:s}:journal
  KEYS[4] statementKey  {L:s}:stmt:<card>

  ARGV[1] op 'pay' | 'unpay'   ARGV[2] cardNo   ARGV[3] channel   ARGV[4] outTradeNo   ARGV[5] channelTxnId
  ARGV[6] amountFen   ARGV[7] merchantParty   ARGV[8] terminalId   ARGV[9] sequence   ARGV[10] nowMs
  ARGV[11] ttlSec (how long the record lasts)

  Returns {code, entryId}:
    1 journalled now   2 already journalled (the first entry's id)   3 (unpay) the payment was never journalled
    5 unknown account (nothing changed)

  A malformed ARGV (count or format) is answered with the error reply "ERR channel-paid: ..." before any
  key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'channel-paid'
local ANSWER_JOURNALLED = 1
local ANSWER_ALREADY_JOURNALLED = 2
local ANSWER_NOT_PAID = 3
local ANSWER_UNKNOWN_CARD = 5

local rcall = redis.call
local paidKey = KEYS[1]
local accountKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]
local op = ARGV[1]

-- @include argv
-- @include answer

local badArgv = argvCount(#ARGV == 11, '11') or argvOneOf(1, 'op', 'pay', 'unpay') or argvId(2, 'cardNo')
  or argvOneOf(3, 'channel', 'alipay', 'wechat') or argvId(4, 'outTradeNo') or argvId(5, 'channelTxnId')
  or argvInteger(6, 'amountFen', 1) or argvId(7, 'merchantParty') or argvId(8, 'terminalId') or argvInteger(9, 'sequence', 1)
  or argvInteger(10, 'nowMs', 0) or argvInteger(11, 'ttlSec', 1)
if badArgv then return badArgv end

local cardNo = ARGV[2]
local channelParty = 'x:ch:' .. string.upper(ARGV[3])
local amountFen = tonumber(ARGV[6])
local merchantParty = ARGV[7]
local paid = rcall('HMGET', paidKey, 'tx', 'rtx')
if op == 'pay' and paid[1] then return { ANSWER_ALREADY_JOURNALLED, paid[1] } end
if op == 'unpay' then
  if not paid[1] then return { ANSWER_NOT_PAID, '' } end
  if paid[2] then return { ANSWER_ALREADY_JOURNALLED, paid[2] } end
end
local account = rcall('HMGET', accountKey, 'bal', 'ver')
if not account[1] then return { ANSWER_UNKNOWN_CARD, '' } end
local balFen = tonumber(account[1])
local version = tonumber(account[2] or '1')
local nowMs = ARGV[10]
local fromParty, toParty, signedFen, kind = channelParty, merchantParty, -amountFen, 'cpay'
if op == 'unpay' then fromParty, toParty, signedFen, kind = merchantParty, channelParty, amountFen, 'cprev' end
local txnId = appendJournal(journalKey, kind, cardNo, amountFen, fromParty, toParty, balFen, version, ARGV[8], ARGV[9], nowMs,
  { 'ot', ARGV[4], 'ct', ARGV[5] })
appendStatement(statementKey, tonumber(nowMs), txnId, kind, signedFen, balFen, ARGV[8], ARGV[9])
if op == 'pay' then
  rcall('HSET', paidKey, 'tx', txnId, 'card', cardNo, 'amt', ARGV[6], 'ct', ARGV[5])
  rcall('EXPIRE', paidKey, tonumber(ARGV[11]))
else
  rcall('HSET', paidKey, 'rtx', txnId)
end
return { ANSWER_JOURNALLED, txnId }
