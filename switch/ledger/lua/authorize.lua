--[[
  Debit a card account for one POS payment, atomically and idempotently.

  KEYS[1] accountKey    {L:s}:acct:<card>     hash of the account
  KEYS[2] requestKey    {L:s}:req:<term>:<seq> the payment's compact record (includes/answer.lua), or a hash:
                        pfp/pans (payment), rfp/rans (reversal)
  KEYS[3] journalKey    {L:s}:journal         stream of the shard
  KEYS[4] statementKey  {L:s}:stmt:<card>     zset statement index of the card
  KEYS[5] eventsKey     {L:s}:ev:<card>       stream of the card's live events (bound e-cards only)
  KEYS[6] qrUsedKey     {L:s}:qru:<card>:<id> the campus QR code's single-use mark (campus QR only)
  KEYS[last] claimKey   <p>:{T:<term>}:seq:<seq> (optional: KEYS[6] of a card payment, KEYS[7] of a campus QR
                        payment) the terminal's sequence claim (ledger/claims.ts), taken here with SET NX GET
                        before anything else when the ledger is one Redis. On a Redis Cluster it lives in
                        another slot than the card's keys, so the switch claims it with its own command first
                        and leaves it out here. Taking it here saves a command per payment (issue 15).

  ARGV[1] cardNo
  ARGV[2] presentedSerial   card serial presented, '' when the credential is not a card tap
  ARGV[3] amountFen         integer > 0
  ARGV[4] fingerprint       what the request was (card, amount, credential kind)
  ARGV[5] terminalId
  ARGV[6] sequence
  ARGV[7] merchantParty     e.g. 'm:canteen-1'
  ARGV[8] nowMs
  ARGV[9] dayKey            YYYYMMDD in campus time
  ARGV[10] pinVerified      '1' when the card password was checked for this request
  ARGV[11] credentialKind   card | campus_qr (the event says how the cardholder paid)
  Campus QR only (the switch opened the code: it is genuine and names this card):
  ARGV[12] qrEpoch          the card's QR epoch sealed in the code (must still be the account's `eq`)
  ARGV[13] qrExpired        '1' when the code is older than its validity (declined, unless this
                            very request was decided before: a retry replays its first answer)
  ARGV[14] qrUsedTtlSec     how long the single-use mark is kept (longer than a code is valid)
  ARGV[15] qrCodeId         the code's id, told to the page so it knows its code was taken

  authorize.lua is a Redis Function, called with FCALL: ledger/scripts.ts makes it a library (FUNCTION
  LOAD) whose top level is everything above the `-- @body` line, run once when Redis loads it, and whose
  one function is everything below it, run per payment with KEYS and ARGV as its parameters.
  Settings, the same for every payment of a deployment, are written into the library's text where the
  `-- @settings` line stands (ledger/scripts.ts SCRIPT_SETTINGS: one library per distinct set, named
  by a hash of its text, checked by the switch when it makes it). As arguments they cost Redis about 1k
  instructions each to receive, and the script more to check, on every payment (issue 15:
  loadtest/RESULTS.md, thirteenth session). Each integer setting is a number local and a text local (`<name>Text`):
    requestTtlSec           how long the request record (and the sequence claim) is kept
    studentNoPinPerPaymentFen, studentNoPinPerDayFen, studentDailySpendLimitFen: the student limits (0 = none)
    staffNoPinPerPaymentFen, staffNoPinPerDayFen, staffDailySpendLimitFen: the staff limits, the same three
    eventsChannel           pub/sub channel of card events (text)
    eventTtlSec             how long a card's events are kept
  A card's own limits (its account field `lim`, set-limits.lua) override its holder type's.

  Returns one string "<code>|<balanceAfterFen>|<txnId>|<decidedAtMs>":
    code  1 approved         5 unknown account (no money moved)
          2 insufficient     6 card replaced (serial is not the account's current one)
          3 lost             7 already reversed (a reversal came first)
          4 frozen           8 daily limit exceeded
          9 cancelled       10 PIN required (over the password-free limits; NOT recorded, so
                               the same request may come again with the PIN)
         11 campus QR invalid: the e-card binding ended, or the card was lost, frozen or replaced
            since the code was issued (its epoch moved on)
         12 campus QR expired   13 campus QR already used (its mark is set when the code is checked,
            in the same script as the debit, and given back by any decline after it: only an
            approval uses a code up, and two POS racing with one code pay once)
  Or a number:
    -1 the key was used before for a different request (nothing changed)
    -2 (claimKey given) the terminal's sequence number is claimed by another card, or by the recorded
       decline of an unknown card (nothing changed: the switch reads the claim to say which)

  A malformed ARGV (count or format) is answered with the error reply "ERR authorize: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'authorize'
local ANSWER_APPROVED = 1
local ANSWER_INSUFFICIENT_FUNDS = 2
local ANSWER_CARD_LOST = 3
local ANSWER_CARD_FROZEN = 4
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_REPLACED = 6
local ANSWER_ALREADY_REVERSED = 7
local ANSWER_DAILY_LIMIT_EXCEEDED = 8
local ANSWER_CARD_CANCELLED = 9
local ANSWER_PIN_REQUIRED = 10
local ANSWER_QR_INVALID = 11
local ANSWER_QR_EXPIRED = 12
local ANSWER_QR_USED = 13
local REFUSED_KEY_REUSED = -1
local REFUSED_SEQUENCE_TAKEN = -2

local NO_PREVIOUS = {}
-- The campus day (UTC+8) in ms, and how far before its midnight a switch may see the next day already
-- begun on an account by another switch whose clock runs ahead (see the day's totals below).
local CAMPUS_UTC_OFFSET_MS = 28800000
local DAY_MS = 86400000
local DAY_END_SKEW_MS = 60000

-- @settings
-- @include answer
-- @include event

-- What stands above runs once, when Redis loads the library (ledger/scripts.ts makes authorize.lua a
-- Redis Function: its constants, settings and helpers are made once, not again for every payment, as
-- an EVALSHA would: issue 15, loadtest/RESULTS.md fourteenth session). What follows is the function,
-- run per payment with KEYS and ARGV as its parameters; redis.call is there only once it runs.
-- @body
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
local dayKey = ARGV[9]
local pinVerified = ARGV[10] == '1'
local eventsKey = KEYS[5]
local credentialKind = ARGV[11]
local qrUsedKey = KEYS[6]
local qrEpoch = ARGV[12]
local claimKey = KEYS[6]
if qrEpoch then claimKey = KEYS[7] end

-- Checked before any key is read. This runs on every payment, so the common case costs a few
-- comparisons, one concatenation and one anchored pattern test: only a call that fails them runs the
-- argument-by-argument chain, which names the problem in the words scripts.ts uses. The fast test is
-- stricter than the chain (at most 15 characters a number), never looser. Leading zeros pass both
-- (redis-benchmark's __rand_int__). A campus QR payment's four more arguments and its sixth key take
-- the same way. (The settings were checked when the switch wrote them into the text.)
local wellFormed = (#ARGV == 11 or #ARGV == 15)
  and cardNo ~= '' and fingerprint ~= '' and terminalId ~= '' and merchantParty ~= '' and dayKey ~= ''
  and credentialKind ~= '' and (ARGV[10] == '0' or ARGV[10] == '1')
  and #ARGV[3] < 16 and #ARGV[6] < 16 and #nowMs < 16
  -- amountFen, sequence, nowMs
  and string.find(ARGV[3] .. ' ' .. ARGV[6] .. ' ' .. nowMs, '^0*[1-9]%d* 0*[1-9]%d* %d+$')
  -- qrEpoch, qrUsedTtlSec
  and (qrEpoch or #KEYS == 5 or #KEYS == 6)
  and (not qrEpoch or ((#KEYS == 6 or #KEYS == 7) and (ARGV[13] == '0' or ARGV[13] == '1') and ARGV[15] ~= '' and #qrEpoch < 16
    and #ARGV[14] < 16 and string.find(qrEpoch .. ' ' .. ARGV[14], '^%d+ 0*[1-9]%d*$')))
if not wellFormed then
  -- The argument-by-argument checks are made only here, where they run: their functions are created
  -- with each run of the script, a cost every payment would pay for nothing (issue 15).
-- @include argv
  local badArgv = argvCount(#ARGV == 11 or #ARGV == 15, '11 or 15')
    or argvId(1, 'cardNo') or argvInteger(3, 'amountFen', 1) or argvId(4, 'fingerprint') or argvId(5, 'terminalId')
    or argvInteger(6, 'sequence', 1) or argvId(7, 'merchantParty') or argvInteger(8, 'nowMs', 0) or argvId(9, 'dayKey')
    or argvFlag(10, 'pinVerified') or argvId(11, 'credentialKind')
  if badArgv then return badArgv end
  if not qrEpoch and #KEYS ~= 5 and #KEYS ~= 6 then
    return argvError('a card payment needs 5 KEYS (6 with its sequence claim), got ' .. #KEYS)
  end
  if qrEpoch then
    badArgv = argvInteger(12, 'qrEpoch', 0) or argvFlag(13, 'qrExpired') or argvInteger(14, 'qrUsedTtlSec', 1)
      or argvId(15, 'qrCodeId')
    if badArgv then return badArgv end
    if #KEYS ~= 6 and #KEYS ~= 7 then
      return argvError('a campus QR payment needs 6 KEYS (its used mark sixth; 7 with its sequence claim), got ' .. #KEYS)
    end
  end
end

-- The amount as Redis is handed it: its ARGV text (checked above: digits), unless that carries leading
-- zeros (redis-benchmark's __rand_int__ may), which digits() drops.
local amountText = ARGV[3]
if string.byte(amountText, 1) == 48 then amountText = digits(amountFen) end
local requestTtlText = requestTtlSecText

-- The sequence claim first (when it is ours to take): a number claimed by another card is refused
-- before anything is read or written. Its owner being this card is a retry (or a crash after the
-- claim), which goes on to the request record like any other.
if claimKey then
  local owner = rcall('SET', claimKey, cardNo, 'NX', 'GET', 'EX', requestTtlText)
  if owner and owner ~= cardNo then return REFUSED_SEQUENCE_TAKEN end
end

-- One read of the request record. A payment's own record is compact (includes/answer.lua): one GET
-- finds none (a new payment) or the earlier answer. A hash here is a reversal that came first (rans),
-- or another kind of request under this key (a different fingerprint): read as before.
local previous = NO_PREVIOUS
local record = redis.pcall('GET', requestKey)
local hashRecord = type(record) == 'table'
if hashRecord then
  local recorded
  recorded, previous = recordedAnswer(requestKey, fingerprint, 'pfp', 'pans', 'rans')
  if recorded then return recorded end
  if recorded == false then return REFUSED_KEY_REUSED end
elseif record then
  local parts = compactRequestParts(record)
  if not parts then return redis.error_reply('INVARIANT request record ' .. requestKey .. ' is not a compact record') end
  if parts[1] == fingerprint then return parts[6] end
  return REFUSED_KEY_REUSED
end

-- The fields every payment needs. A field the hash lacks costs Redis a scan of the whole hash, so a
-- card's own limits are one field (`lim`, not three), and the fields only a bound card has (`ew`,
-- `evx`) or only a campus QR payment needs (`eq`) are read below, where they are needed (issue 15:
-- about 10k instructions per payment of an unbound card, loadtest/RESULTS.md fifteenth session).
-- Every field read and written costs Redis a walk of the listpack, a reply and an AOF argument, so
-- the campus day's totals are one field too (`day`, not three: about 4.5k instructions per payment,
-- loadtest/RESULTS.md sixteenth session).
local account = rcall('HMGET', accountKey, 'bal', 'st', 'ser', 'day', 'sync', 'ht', 'lim', 'ver', 'eu')
local bound = account[9] and account[9] ~= ''
-- The card's own limits (set-limits.lua): "<per payment>,<per day>,<daily cap>", each empty when not
-- set; read before anything is written, so a broken one changes nothing.
local ownLimits = account[7]
local ownPerPayment, ownPerDay, ownDailyCap
if ownLimits then
  ownPerPayment, ownPerDay, ownDailyCap = string.match(ownLimits, '^(%d*),(%d*),(%d*)$')
  if not ownPerPayment then
    return redis.error_reply('INVARIANT account ' .. accountKey .. ' has card limits that are not three numbers of fen: ' .. ownLimits)
  end
end
-- The campus day's totals (`day`): "<YYYYMMDD>,<spent fen>,<spent without password fen>", empty before
-- the card's first payment, written by every approval; totals of another day are no totals. Read before
-- anything is written, so a broken one changes nothing. An account opened before `day` keeps its day in
-- three fields (`dday`, `dspent`, `dnopin`): read only then, and folded into `day` by its next approval.
local daySpentFen, dayNoPinFen = 0, 0
local dayState = account[4]
local legacyDay = false
if not dayState then
  if account[1] then
    legacyDay = true
    local legacy = rcall('HMGET', accountKey, 'dday', 'dspent', 'dnopin')
    if legacy[1] == dayKey then
      daySpentFen = tonumber(legacy[2]) or 0
      dayNoPinFen = tonumber(legacy[3]) or 0
    end
  end
elseif dayState ~= '' then
  local stamp, spent, noPin = string.match(dayState, '^(%d+),(%d+),(%d+)$')
  if not stamp then
    return redis.error_reply('INVARIANT account ' .. accountKey .. ' has day totals that are not a day and two numbers of fen: ' .. dayState)
  end
  if stamp == dayKey then
    daySpentFen, dayNoPinFen = tonumber(spent), tonumber(noPin)
  elseif stamp > dayKey and (tonumber(nowMs) + CAMPUS_UTC_OFFSET_MS) % DAY_MS >= DAY_MS - DAY_END_SKEW_MS then
    -- Another switch, its clock a little ahead, began the next campus day on this account while this
    -- one's clock is in the last minute of the day before: that day's totals are this payment's too.
    -- The account's day never goes back, or the new day's spending would be wiped (and its cap passed).
    dayKey, daySpentFen, dayNoPinFen = stamp, tonumber(spent), tonumber(noPin)
  end
end
-- A bound card's event stream gets its expiry extended with this event only now and then (event.lua).
-- Only a bound card's events need these numbers (most payments are of unbound cards).
local nowSec = 0
local extendEvents = false
local watchedUntil = false
if bound then
  local watch = rcall('HMGET', accountKey, 'ew', 'evx')
  watchedUntil = watch[1]
  nowSec = math.floor(tonumber(nowMs) / 1000)
  extendEvents = cardEventsExpiryDue(watch[2], nowSec, eventTtlSec)
end

-- The checks, then the debit: a decline leaves the block with its answer (`break`), the approval falls
-- through with its own; either is recorded below. (One block rather than a recording closure made on
-- every call: issue 15, loadtest/RESULTS.md fourteenth session.)
local code, balanceText, txnId = ANSWER_APPROVED, '', ''
repeat
  if previous[3] then code, balanceText = ANSWER_ALREADY_REVERSED, digits(tonumber(account[1]) or 0) break end

  local balanceFen = tonumber(account[1])
  if balanceFen == nil then code, balanceText = ANSWER_UNKNOWN_CARD, '0' break end
  if presentedSerial ~= '' and account[3] ~= presentedSerial then code, balanceText = ANSWER_CARD_REPLACED, digits(balanceFen) break end

  -- A tap on any terminal completes the card sync (e-card activation), even when the payment is declined.
  if presentedSerial ~= '' and account[5] ~= '1' then rcall('HSET', accountKey, 'sync', '1') end

  local status = account[2]
  if qrEpoch and ARGV[13] == '1' then code, balanceText = ANSWER_QR_EXPIRED, digits(balanceFen) break end
  if status == 'L' then code, balanceText = ANSWER_CARD_LOST, digits(balanceFen) break end
  if status == 'F' then code, balanceText = ANSWER_CARD_FROZEN, digits(balanceFen) break end
  if status == 'C' then code, balanceText = ANSWER_CARD_CANCELLED, digits(balanceFen) break end
  if qrEpoch then
    -- The code is genuine (the switch opened it), but it is dead once its binding ended or the card
    -- was lost, frozen or replaced after it was issued: each of those moves the epoch on.
    if not account[9] or tostring(rcall('HGET', accountKey, 'eq') or '0') ~= qrEpoch then
      code, balanceText = ANSWER_QR_INVALID, digits(balanceFen) break
    end
    -- Taken now, in one call; a decline below gives it back (only an approval uses a code up).
    if not rcall('SET', qrUsedKey, '1', 'NX', 'EX', tonumber(ARGV[14])) then code, balanceText = ANSWER_QR_USED, digits(balanceFen) break end
  end

  local noPinPerPaymentFen = studentNoPinPerPaymentFen
  local noPinPerDayFen = studentNoPinPerDayFen
  local dailyLimitFen = studentDailySpendLimitFen
  if account[6] == 'T' then
    noPinPerPaymentFen = staffNoPinPerPaymentFen
    noPinPerDayFen = staffNoPinPerDayFen
    dailyLimitFen = staffDailySpendLimitFen
  end
  if ownLimits then
    if ownPerPayment ~= '' then noPinPerPaymentFen = tonumber(ownPerPayment) end
    if ownPerDay ~= '' then noPinPerDayFen = tonumber(ownPerDay) end
    if ownDailyCap ~= '' then dailyLimitFen = tonumber(ownDailyCap) end
  end

  if balanceFen < amountFen then
    if qrEpoch then rcall('DEL', qrUsedKey) end -- a decline gives the code back
    code, balanceText = ANSWER_INSUFFICIENT_FUNDS, digits(balanceFen) break
  end
  if dailyLimitFen > 0 and daySpentFen + amountFen > dailyLimitFen then
    if qrEpoch then rcall('DEL', qrUsedKey) end -- a decline gives the code back
    code, balanceText = ANSWER_DAILY_LIMIT_EXCEEDED, digits(balanceFen) break
  end
  if not pinVerified and (amountFen > noPinPerPaymentFen or dayNoPinFen + amountFen > noPinPerDayFen) then
    if qrEpoch then rcall('DEL', qrUsedKey) end -- a decline gives the code back
    return string.format('%d|%d||%s', ANSWER_PIN_REQUIRED, balanceFen, nowMs)
  end

  -- Balance, version and the day's totals in one write (balanceFen >= amountFen was checked above).
  local balanceAfterFen = balanceFen - amountFen
  local version = (tonumber(account[8]) or 0) + 1
  if not pinVerified then dayNoPinFen = dayNoPinFen + amountFen end
  local balanceAfterText = digits(balanceAfterFen)
  local versionText = digits(version)
  rcall('HSET', accountKey, 'bal', balanceAfterText, 'ver', versionText,
    'day', dayKey .. ',' .. digits(daySpentFen + amountFen) .. ',' .. digits(dayNoPinFen))
  if legacyDay then rcall('HDEL', accountKey, 'dday', 'dspent', 'dnopin') end
  if extendEvents then rcall('HSET', accountKey, 'evx', digits(nowSec)) end
  local entryId = appendJournal(journalKey, 'pay', cardNo, amountText, 'a:' .. cardNo, merchantParty,
    balanceAfterText, versionText, terminalId, sequence, nowMs)
  appendStatement(statementKey, nowMs, entryId, 'pay', '-' .. amountText, balanceAfterText, terminalId, sequence)
  code, balanceText, txnId = ANSWER_APPROVED, balanceAfterText, entryId
until true

-- Records the answer under the request key (pst: A approved, D declined) so a retry replays it, and
-- appends a bound e-card's event (announced while a page of it is open). The account's `ew` and
-- `evx` were read above for a bound card; an approval writes `evx` with its own HSET, a decline here.
-- `balanceText` is the balance's digits (the approval has them made already; a concatenation costs
-- Redis about 2k instructions less per payment than string.format: issue 15, RESULTS thirteenth session).
local answer = code .. '|' .. balanceText .. '|' .. txnId .. '|' .. nowMs
local state = 'D'
local kind = 'decl'
if code == ANSWER_APPROVED then
  state = 'A'
  kind = 'pay'
end
-- Compact, with its expiry, in one command; the hash when a reversal's tombstone is there already, or
-- when a value would hold the newline that separates them (never one the switch makes).
-- (One find over the three texts: callgrind, three finds cost 3k more per payment.)
if hashRecord or string.find(fingerprint .. merchantParty .. cardNo, '\n', 1, true) then
  rcall('HSET', requestKey, 'pfp', fingerprint, 'pans', answer, 'pst', state, 'amt', amountText, 'mp', merchantParty,
    'card', cardNo)
  rcall('EXPIRE', requestKey, requestTtlText)
else
  rcall('SET', requestKey, fingerprint .. '\n' .. state .. '\n' .. amountText .. '\n' .. merchantParty .. '\n' .. cardNo .. '\n'
    .. answer, 'EX', requestTtlText)
end
if not bound then return answer end
local id, body = appendCardEvent(eventsKey, { 'k', kind, 'a', amountText, 'b', balanceText, 'r', digits(code), 'tm', terminalId,
  'm', merchantParty, 'cr', credentialKind, 'q', ARGV[15] or '', 'tx', txnId, 'ts', nowMs })
if extendEvents then
  rcall('EXPIRE', eventsKey, eventTtlSecText)
  if code ~= ANSWER_APPROVED then rcall('HSET', accountKey, 'evx', digits(nowSec)) end
end
announceCardEvent(watchedUntil, eventsChannel, cardNo, id, body)
return answer

