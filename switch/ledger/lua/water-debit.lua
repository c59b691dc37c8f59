--[[
  Spend from a card's small wallet (water control: showers, water heaters), atomically and idempotently.
  The account balance is never touched: water spending comes ONLY from the small wallet, and stops at
  zero (a debit larger than the wallet is declined and changes nothing).

  KEYS[1] accountKey    {L:s}:acct:<card>          hash: bal, wal (small wallet fen), wopen (1 once opened), ...
  KEYS[2] requestKey    {L:s}:req:<term>:<seq>     hash: pfp/pans, pst, card
  KEYS[3] journalKey    {L:s}:journal              stream of the shard
  KEYS[4] statementKey  {L:s}:stmt:<card>          zset statement index of the card

  ARGV[1] cardNo
  ARGV[2] presentedSerial   card serial presented, '' when the credential is not a card tap
  ARGV[3] amountFen         integer 1 .. walletCapFen
  ARGV[4] fingerprint       what the request was (card, amount, credential kind)
  ARGV[5] terminalId
  ARGV[6] sequence
  ARGV[7] merchantParty     the water terminal's merchant, e.g. 'm:bath-xy'
  ARGV[8] nowMs
  ARGV[9] requestTtlSec
  ARGV[10] walletCapFen     the most the small wallet may hold (1000 = 10.00)

  Returns one string "<code>|<walletAfterFen>|<txnId>|<decidedAtMs>":
    code  1 approved            5 unknown account (wallet 0)
          2 wallet too small    6 card replaced (wallet 0: an old card learns nothing)
          3 lost                9 cancelled
          4 frozen             11 wallet not opened yet (first swipe a settlement POS)
    Every code but 1 changed no money; all are recorded under the request key, so a retry replays them.
  Or a number:
    -1 the key was used before for a different request (nothing changed)
  Or an error reply "INVARIANT ..." when the stored wallet is outside 0 .. walletCapFen (nothing changed).

  The request record (same mechanism as authorize.lua) gets pst W for an approved debit and D for a
  decline, and no `amt`/`mp`: reverse.lua then refuses to treat a water debit as a reversible payment.
  Journal entry `wpay` w:<card> -> merchant, with `b` = account balance (unchanged) and `wb` = wallet after.
  Statement line: signed amount = the wallet change, balance after = the wallet after (the line is read
  from the wallet's point of view, like the water controller's screen).

  A malformed ARGV (count or format) is answered with the error reply "ERR water-debit: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'water-debit'
local ANSWER_APPROVED = 1
local ANSWER_SMALL_WALLET_SHORT = 2
local ANSWER_CARD_LOST = 3
local ANSWER_CARD_FROZEN = 4
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_REPLACED = 6
local ANSWER_CARD_CANCELLED = 9
local ANSWER_SMALL_WALLET_NOT_OPENED = 11
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local accountKey = KEYS[1]
local requestKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]

local cardNo = ARGV[1]
local presentedSerial = ARGV[2]
local amountFen = tonumber(ARGV[3])
local fingerprint = ARGV[4]
local terminalId = ARGV[5]
local sequence = ARGV[6]
local merchantParty = ARGV[7]
local nowMs = ARGV[8]
local requestTtlSec = tonumber(ARGV[9])
local walletCapFen = tonumber(ARGV[10])

-- @include answer
-- @include wallet
-- @include argv

local badArgv = argvCount(#ARGV == 10, '10')
  or argvId(1, 'cardNo') or argvInteger(3, 'amountFen', 1) or argvId(4, 'fingerprint') or argvId(5, 'terminalId')
  or argvInteger(6, 'sequence', 1) or argvId(7, 'merchantParty') or argvInteger(8, 'nowMs', 0)
  or argvInteger(9, 'requestTtlSec', 1) or argvInteger(10, 'walletCapFen', 1)
if badArgv then return badArgv end

local recorded = recordedAnswer(requestKey, fingerprint, 'pfp', 'pans')
if recorded then return recorded end
if recorded == false then return REFUSED_KEY_REUSED end

local function decide(code, walletFen, txnId)
  return recordWalletAnswer(requestKey, fingerprint, cardNo, requestTtlSec, code, joinAnswer({ code, walletFen, txnId, nowMs }))
end

local account = rcall('HMGET', accountKey, 'bal', 'wal', 'st', 'ser', 'sync', 'wopen')
local balanceFen = tonumber(account[1])
if balanceFen == nil then return decide(ANSWER_UNKNOWN_CARD, 0, '') end
if presentedSerial ~= '' and account[4] ~= presentedSerial then return decide(ANSWER_CARD_REPLACED, 0, '') end

-- Checked before any write: a broken wallet stops the request loudly and changes nothing.
local walletFen = tonumber(account[2] or '0')
if not isWholeFenWithin(walletFen, 0, walletCapFen) then
  return redis.error_reply('INVARIANT small wallet ' .. tostring(account[2]) .. ' outside 0..' .. walletCapFen .. ' for ' .. cardNo)
end

-- A tap on any terminal completes the card sync (e-card activation), even when the debit is declined.
if presentedSerial ~= '' and account[5] ~= '1' then rcall('HSET', accountKey, 'sync', '1') end

local status = account[3]
if status == 'L' then return decide(ANSWER_CARD_LOST, walletFen, '') end
if status == 'F' then return decide(ANSWER_CARD_FROZEN, walletFen, '') end
if status == 'C' then return decide(ANSWER_CARD_CANCELLED, walletFen, '') end
if account[6] ~= '1' then return decide(ANSWER_SMALL_WALLET_NOT_OPENED, walletFen, '') end
if amountFen > walletFen then return decide(ANSWER_SMALL_WALLET_SHORT, walletFen, '') end

local walletAfterFen = walletFen - amountFen
if not isWholeFenWithin(walletAfterFen, 0, walletCapFen) then
  -- Unreachable by the checks above; stop loudly rather than keep a negative wallet.
  return redis.error_reply('INVARIANT small wallet would become ' .. walletAfterFen .. ' for ' .. cardNo)
end
local storedAfterFen = rcall('HINCRBY', accountKey, 'wal', -amountFen)
if storedAfterFen ~= walletAfterFen then
  return redis.error_reply('INVARIANT small wallet moved to ' .. storedAfterFen .. ', expected ' .. walletAfterFen .. ' for ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)

local entryId = appendJournal(journalKey, 'wpay', cardNo, digits(amountFen), 'w:' .. cardNo, merchantParty,
  digits(balanceFen), digits(version), terminalId, sequence, nowMs, { 'wb', tostring(walletAfterFen) })
appendStatement(statementKey, nowMs, entryId, 'wpay', digits(-amountFen), digits(walletAfterFen), terminalId, sequence)
return decide(ANSWER_APPROVED, walletAfterFen, entryId)
