-- Shared helpers: answers are stored and returned as one '|'-joined string so that a retry
-- returns the first answer byte for byte.
-- A whole number as decimal text. Lua's tostring (and Redis 7.0 for a number handed to redis.call)
-- writes numbers with a floating-point printf ("%.14g" / "%.17g"), which costs several times the
-- integer "%d" in Redis's CPU per payment (issue 15): scripts hand Redis text, made here. Anything
-- that is not a whole number goes through tostring unchanged.
local function digits(value)
  if type(value) == 'number' and value % 1 == 0 and value > -1e15 and value < 1e15 then return string.format('%d', value) end
  return tostring(value)
end

local function joinAnswer(parts)
  return table.concat(parts, '|')
end

-- Appends one journal entry (double-entry in spirit: money moves from `fromParty` to `toParty`)
-- and returns its stream id. `extra` (optional) holds more field, value pairs: `wb` for wallet
-- moves, `r` for an operator's reason.
-- An entry without `extra` is written compact: one field `e` holding the ten values joined by '|'
-- in the order below (issue 15: one stream field instead of ten costs Redis about a tenth of a
-- payment's work and 130 bytes of AOF). Readers expand it (ledger/journal.ts expandJournalRow), so
-- every reader sees the same ten fields either way. A value holding '|' (never one the switch
-- makes: ids are validated, amounts are digits) keeps the ten-field form.
local function appendJournal(journalKey, kind, cardNo, amountFen, fromParty, toParty, balanceAfterFen,
                             version, terminalId, sequence, nowMs, extra)
  if extra == nil then
    -- The texts that could hold a '|' (the numbers are digits): plain finds, far cheaper than a pattern.
    local find = string.find
    if not (find(cardNo, '|', 1, true) or find(fromParty, '|', 1, true) or find(toParty, '|', 1, true)
        or find(terminalId, '|', 1, true) or find(sequence, '|', 1, true) or find(kind, '|', 1, true)
        or find(nowMs, '|', 1, true)) then
      return redis.call('XADD', journalKey, '*', 'e', kind .. '|' .. cardNo .. '|' .. digits(amountFen) .. '|' .. fromParty .. '|'
        .. toParty .. '|' .. digits(balanceAfterFen) .. '|' .. digits(version) .. '|' .. terminalId .. '|' .. sequence .. '|' .. nowMs)
    end
    return redis.call('XADD', journalKey, '*',
      'k', kind, 'c', cardNo, 'a', digits(amountFen), 'f', fromParty, 't', toParty,
      'b', digits(balanceAfterFen), 'v', digits(version), 'tm', terminalId, 'sq', sequence, 'ts', nowMs)
  end
  return redis.call('XADD', journalKey, '*',
    'k', kind, 'c', cardNo, 'a', digits(amountFen), 'f', fromParty, 't', toParty,
    'b', digits(balanceAfterFen), 'v', digits(version), 'tm', terminalId, 'sq', sequence, 'ts', nowMs,
    unpack(extra))
end

-- The recorded answer of a request, in one read of its record: the answer when this very request
-- was decided before, false when its key was used for a different request (the script answers its
-- REFUSED_KEY_REUSED), nil when it is new. Reads `fingerprintField` and `answerField` ('pfp', 'pans'
-- for terminal requests) and then any more fields the script needs; the second value is everything read.
local function recordedAnswer(requestKey, fingerprint, fingerprintField, answerField, ...)
  local record = redis.call('HMGET', requestKey, fingerprintField, answerField, ...)
  if not record[1] then return nil, record end
  if record[1] == fingerprint then return record[2], record end
  return false, record
end

-- Statement line: "<txnId>|<kind>|<signed amount>|<balance after>|<terminal>|<sequence>"
local function appendStatement(statementKey, nowMs, txnId, kind, signedAmountFen, balanceAfterFen, terminalId, sequence)
  redis.call('ZADD', statementKey, nowMs,
    txnId .. '|' .. kind .. '|' .. digits(signedAmountFen) .. '|' .. digits(balanceAfterFen) .. '|' .. terminalId .. '|' .. sequence)
end
