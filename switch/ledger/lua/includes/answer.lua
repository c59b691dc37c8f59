-- Shared helpers: answers are stored and returned as one '|'-joined string so that a retry
-- returns the first answer byte for byte.
local function joinAnswer(parts)
  return table.concat(parts, '|')
end

-- Appends one journal entry (double-entry in spirit: money moves from `fromParty` to `toParty`)
-- and returns its stream id.
local function appendJournal(journalKey, kind, cardNo, amountFen, fromParty, toParty, balanceAfterFen,
                             version, terminalId, sequence, nowMs)
  return redis.call('XADD', journalKey, '*',
    'k', kind, 'c', cardNo, 'a', tostring(amountFen), 'f', fromParty, 't', toParty,
    'b', tostring(balanceAfterFen), 'v', tostring(version), 'tm', terminalId, 'sq', sequence, 'ts', nowMs)
end

-- Statement line: "<txnId>|<kind>|<signed amount>|<balance after>|<terminal>|<sequence>"
local function appendStatement(statementKey, nowMs, txnId, kind, signedAmountFen, balanceAfterFen, terminalId, sequence)
  redis.call('ZADD', statementKey, nowMs,
    table.concat({ txnId, kind, tostring(signedAmountFen), tostring(balanceAfterFen), terminalId, sequence }, '|'))
end
