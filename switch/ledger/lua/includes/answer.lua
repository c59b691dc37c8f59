-- Shared helpers: answers are stored and returned as one '|'-joined string so that a retry
-- returns the first answer byte for byte.
local function joinAnswer(parts)
  return table.concat(parts, '|')
end

-- Appends one journal entry (double-entry in spirit: money moves from `fromParty` to `toParty`)
-- and returns its stream id. `extra` (optional) holds more field, value pairs: `wb` for wallet
-- moves, `r` for an operator's reason.
local function appendJournal(journalKey, kind, cardNo, amountFen, fromParty, toParty, balanceAfterFen,
                             version, terminalId, sequence, nowMs, extra)
  if extra == nil then
    return redis.call('XADD', journalKey, '*',
      'k', kind, 'c', cardNo, 'a', tostring(amountFen), 'f', fromParty, 't', toParty,
      'b', tostring(balanceAfterFen), 'v', tostring(version), 'tm', terminalId, 'sq', sequence, 'ts', nowMs)
  end
  return redis.call('XADD', journalKey, '*',
    'k', kind, 'c', cardNo, 'a', tostring(amountFen), 'f', fromParty, 't', toParty,
    'b', tostring(balanceAfterFen), 'v', tostring(version), 'tm', terminalId, 'sq', sequence, 'ts', nowMs,
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
    table.concat({ txnId, kind, tostring(signedAmountFen), tostring(balanceAfterFen), terminalId, sequence }, '|'))
end
