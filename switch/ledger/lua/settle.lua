--[[
  Settlement POS swipe for the small wallet (water control), atomically and idempotently.

  First swipe of a card (account field wopen is not 1): moves walletCapFen - wal (10.00 for a new
  account) from the account into the small wallet (kind `wopen`, a:<card> -> w:<card>) and sets wopen=1.
  Opening needs the whole amount: with a smaller balance it is declined (code 2) and nothing changes,
  because a partly filled new wallet would later be reported as "spent" money that was never spent.

  Later swipes: spent = walletCapFen - wal is what was spent from the wallet and not yet charged. It is
  charged to the account by refilling the wallet (kind `wset`, a:<card> -> w:<card>):
    - balance >= spent: the wallet is refilled to walletCapFen (approved, moved = spent);
    - 0 < balance < spent: "refill what the balance covers": moved = balance, the balance ends at 0
      (never negative), the wallet stays below walletCapFen, approved (a partial refill, moved < spent);
      the next settlement charges the rest, so its `spent` includes this shortfall;
    - balance = 0 and spent > 0: declined (code 2), nothing moves;
    - spent = 0: approved, moves nothing, writes no journal entry and no statement line.

  KEYS[1] accountKey    {L:s}:acct:<card>          hash: bal, wal, wopen, st, ser, sync, ver
  KEYS[2] requestKey    {L:s}:req:<term>:<seq>     hash: pfp/pans, pst, card
  KEYS[3] journalKey    {L:s}:journal              stream of the shard
  KEYS[4] statementKey  {L:s}:stmt:<card>          zset statement index of the card

  ARGV[1] cardNo
  ARGV[2] presentedSerial   the tapped card's serial (settlement is a card tap only, never '')
  ARGV[3] fingerprint       what the request was (card)
  ARGV[4] terminalId
  ARGV[5] sequence
  ARGV[6] nowMs
  ARGV[7] requestTtlSec
  ARGV[8] walletCapFen      what the small wallet holds when full (1000 = 10.00)

  Returns one string
    "<code>|<balanceAfterFen>|<walletAfterFen>|<spentFen>|<movedFen>|<opened 0/1>|<txnId>|<decidedAtMs>":
    code  1 approved (opened, refilled fully or partly, or nothing to settle)
          2 insufficient funds (opening: balance < the opening amount; later: balance 0 and spent > 0)
          3 lost   4 frozen   9 cancelled (balance, wallet and spent as they are: spent is what was spent from
            an opened wallet and is still owed, moved 0)
          5 unknown account (all amounts 0)   6 card replaced (all amounts 0: an old card learns nothing)
    Every code but 1 changed no money; all are recorded under the request key, so a retry replays them.
  Or a number:
    -1 the key was used before for a different request (nothing changed)
  Or an error reply "INVARIANT ..." when the stored balance or wallet is out of range (nothing changed).

  The request record gets pst W for an approved settlement and D for a decline, and no `amt`/`mp`:
  reverse.lua then refuses to treat a settlement as a reversible payment.
  Journal entry: `b` = account balance after, `wb` = wallet after. Statement line: signed amount = the
  account change (negative), balance after = the account balance after.

  A malformed ARGV (count or format) is answered with the error reply "ERR settle: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'settle'
local ANSWER_APPROVED = 1
local ANSWER_INSUFFICIENT_FUNDS = 2
local ANSWER_CARD_LOST = 3
local ANSWER_CARD_FROZEN = 4
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_REPLACED = 6
local ANSWER_CARD_CANCELLED = 9
local REFUSED_KEY_REUSED = -1

local rcall = redis.call
local accountKey = KEYS[1]
local requestKey = KEYS[2]
local journalKey = KEYS[3]
local statementKey = KEYS[4]

local cardNo = ARGV[1]
local presentedSerial = ARGV[2]
local fingerprint = ARGV[3]
local terminalId = ARGV[4]
local sequence = ARGV[5]
local nowMs = ARGV[6]
local requestTtlSec = tonumber(ARGV[7])
local walletCapFen = tonumber(ARGV[8])

-- @include answer
-- @include wallet
-- @include argv

local badArgv = argvCount(#ARGV == 8, '8')
  or argvId(1, 'cardNo') or argvId(2, 'presentedSerial') or argvId(3, 'fingerprint') or argvId(4, 'terminalId')
  or argvInteger(5, 'sequence', 1) or argvInteger(6, 'nowMs', 0) or argvInteger(7, 'requestTtlSec', 1)
  or argvInteger(8, 'walletCapFen', 1)
if badArgv then return badArgv end

local recorded = recordedAnswer(requestKey, fingerprint, 'pfp', 'pans')
if recorded then return recorded end
if recorded == false then return REFUSED_KEY_REUSED end

local function decide(code, balanceFen, walletFen, spentFen, movedFen, opened, txnId)
  return recordWalletAnswer(requestKey, fingerprint, cardNo, requestTtlSec, code, joinAnswer({ code, balanceFen, walletFen, spentFen, movedFen, opened, txnId, nowMs }))
end

local account = rcall('HMGET', accountKey, 'bal', 'wal', 'st', 'ser', 'sync', 'wopen')
local balanceFen = tonumber(account[1])
if balanceFen == nil then return decide(ANSWER_UNKNOWN_CARD, 0, 0, 0, 0, 0, '') end
if account[4] ~= presentedSerial then return decide(ANSWER_CARD_REPLACED, 0, 0, 0, 0, 0, '') end

-- Checked before any write: a broken account stops the request loudly and changes nothing.
local walletFen = tonumber(account[2] or '0')
if not isWholeFenWithin(walletFen, 0, walletCapFen) then
  return redis.error_reply('INVARIANT small wallet ' .. tostring(account[2]) .. ' outside 0..' .. walletCapFen .. ' for ' .. cardNo)
end
if not isWholeFenWithin(balanceFen, 0, math.huge) then
  return redis.error_reply('INVARIANT balance ' .. tostring(account[1]) .. ' is not a whole number of fen >= 0 for ' .. cardNo)
end

-- A tap on any terminal completes the card sync (e-card activation), even when the settlement is declined.
if account[5] ~= '1' then rcall('HSET', accountKey, 'sync', '1') end

local opening = account[6] ~= '1'
local missingFen = walletCapFen - walletFen

-- A lost, frozen or cancelled card is declined, charging nothing; the POS still shows what was spent from
-- the wallet and stays owed (nothing before the wallet was opened), not 0.
local owedFen = missingFen
if opening then owedFen = 0 end
local status = account[3]
if status == 'L' then return decide(ANSWER_CARD_LOST, balanceFen, walletFen, owedFen, 0, 0, '') end
if status == 'F' then return decide(ANSWER_CARD_FROZEN, balanceFen, walletFen, owedFen, 0, 0, '') end
if status == 'C' then return decide(ANSWER_CARD_CANCELLED, balanceFen, walletFen, owedFen, 0, 0, '') end

local kind, spentFen, movedFen
if opening then
  if balanceFen < missingFen then return decide(ANSWER_INSUFFICIENT_FUNDS, balanceFen, walletFen, 0, 0, 0, '') end
  kind, spentFen, movedFen = 'wopen', 0, missingFen
else
  if missingFen == 0 then return decide(ANSWER_APPROVED, balanceFen, walletFen, 0, 0, 0, '') end
  if balanceFen == 0 then return decide(ANSWER_INSUFFICIENT_FUNDS, balanceFen, walletFen, missingFen, 0, 0, '') end
  kind, spentFen, movedFen = 'wset', missingFen, math.min(missingFen, balanceFen)
end

local balanceAfterFen = balanceFen - movedFen
local walletAfterFen = walletFen + movedFen
if movedFen <= 0 or not isWholeFenWithin(balanceAfterFen, 0, math.huge)
    or not isWholeFenWithin(walletAfterFen, 0, walletCapFen) then
  -- Unreachable by the checks above; stop loudly rather than move money wrongly.
  return redis.error_reply('INVARIANT settlement would leave balance ' .. balanceAfterFen .. ', wallet ' .. walletAfterFen .. ' for ' .. cardNo)
end
local storedBalanceFen = rcall('HINCRBY', accountKey, 'bal', -movedFen)
local storedWalletFen = rcall('HINCRBY', accountKey, 'wal', movedFen)
if storedBalanceFen ~= balanceAfterFen or storedWalletFen ~= walletAfterFen then
  return redis.error_reply('INVARIANT settlement stored balance ' .. storedBalanceFen .. ', wallet ' .. storedWalletFen .. ' for ' .. cardNo)
end
local version = rcall('HINCRBY', accountKey, 'ver', 1)
if opening then rcall('HSET', accountKey, 'wopen', '1') end

local entryId = appendJournal(journalKey, kind, cardNo, digits(movedFen), 'a:' .. cardNo, 'w:' .. cardNo,
  digits(balanceAfterFen), digits(version), terminalId, sequence, nowMs, { 'wb', tostring(walletAfterFen) })
appendStatement(statementKey, nowMs, entryId, kind, digits(-movedFen), digits(balanceAfterFen), terminalId, sequence)
local openedFlag = 0
if opening then openedFlag = 1 end
return decide(ANSWER_APPROVED, balanceAfterFen, walletAfterFen, spentFen, movedFen, openedFlag, entryId)
