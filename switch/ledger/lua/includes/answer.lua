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

-- The recorded answer of a terminal request: the answer when this very request was decided before,
-- -1 when its key was used for a different request, nil when it is new.
local function recordedAnswer(requestKey, fingerprint)
  local previous = redis.call('HMGET', requestKey, 'pfp', 'pans')
  if not previous[1] then return nil end
  if previous[1] == fingerprint then return previous[2] end
  return -1
end

-- Statement line: "<txnId>|<kind>|<signed amount>|<balance after>|<terminal>|<sequence>"
local function appendStatement(statementKey, nowMs, txnId, kind, signedAmountFen, balanceAfterFen, terminalId, sequence)
  redis.call('ZADD', statementKey, nowMs,
    table.concat({ txnId, kind, tostring(signedAmountFen), tostring(balanceAfterFen), terminalId, sequence }, '|'))
end
