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
-- `amountFen`, `balanceAfterFen` and `version` are texts, their digits: callers make them with
-- digits() (authorize.lua has them made already; converting here again cost it ~7k Redis
-- instructions per payment: issue 15, loadtest/RESULTS.md thirteenth session).
local function appendJournal(journalKey, kind, cardNo, amountFen, fromParty, toParty, balanceAfterFen,
                             version, terminalId, sequence, nowMs, extra)
  if extra == nil then
    -- The texts that could hold a '|' (the numbers are digits): plain finds, far cheaper than a pattern.
    local find = string.find
    if not (find(cardNo, '|', 1, true) or find(fromParty, '|', 1, true) or find(toParty, '|', 1, true)
        or find(terminalId, '|', 1, true) or find(sequence, '|', 1, true) or find(kind, '|', 1, true)
        or find(nowMs, '|', 1, true)) then
      return redis.call('XADD', journalKey, '*', 'e', kind .. '|' .. cardNo .. '|' .. amountFen .. '|' .. fromParty .. '|'
        .. toParty .. '|' .. balanceAfterFen .. '|' .. version .. '|' .. terminalId .. '|' .. sequence .. '|' .. nowMs)
    end
    return redis.call('XADD', journalKey, '*',
      'k', kind, 'c', cardNo, 'a', amountFen, 'f', fromParty, 't', toParty,
      'b', balanceAfterFen, 'v', version, 'tm', terminalId, 'sq', sequence, 'ts', nowMs)
  end
  return redis.call('XADD', journalKey, '*',
    'k', kind, 'c', cardNo, 'a', amountFen, 'f', fromParty, 't', toParty,
    'b', balanceAfterFen, 'v', version, 'tm', terminalId, 'sq', sequence, 'ts', nowMs,
    unpack(extra))
end

-- A card payment's request record is kept compact (issue 15): one string, written with its expiry in
-- one SET ... EX, instead of a hash of six fields and an EXPIRE (callgrind: about 23k fewer Redis
-- instructions of a payment's ~320k, 14 % fewer AOF bytes: loadtest/RESULTS.md, twelfth session).
-- Its six values, in this order, joined by newlines:
--   pfp (the payment's fingerprint), pst (A approved, D declined), amt, mp, card, pans (the answer, last:
--   it may hold anything but the others hold no newline; authorize.lua keeps the hash when one would).
-- Every other record (reversals first, water, fees, refunds, settlements) is a hash, and a payment's
-- record becomes one when a reversal or a refund writes to it (requestAsHash, keeping its expiry).
-- Readers take either form: requestFields here, ledger/request-records.ts in the switch.

-- The six values of a compact record, or nil when the text is not one.
local function compactRequestParts(text)
  local parts = {}
  local from = 1
  for i = 1, 5 do
    local cut = string.find(text, '\n', from, true)
    if not cut then return nil end
    parts[i] = string.sub(text, from, cut - 1)
    from = cut + 1
  end
  parts[6] = string.sub(text, from)
  return parts
end

-- HMGET of a request record in either form (a field a compact record lacks reads as false, as HMGET's).
local function requestFields(requestKey, ...)
  local record = redis.pcall('HMGET', requestKey, ...)
  if record.err == nil then return record end
  local text = redis.call('GET', requestKey)
  local parts = text and compactRequestParts(text)
  if not parts then error(redis.error_reply('INVARIANT request record ' .. requestKey .. ' is neither a hash nor a compact record')) end
  -- The compact record's values by name (made here, where it is read: every script includes this file).
  local at = { pfp = 1, pst = 2, amt = 3, mp = 4, card = 5, pans = 6 }
  local names = { ... }
  local values = {}
  for i = 1, #names do
    local index = at[names[i]]
    values[i] = (index and parts[index]) or false
  end
  return values
end

-- Before a script writes fields into a request record: a compact one becomes the hash of its six
-- fields, with the expiry it had. A hash, or no record, is left as it is. Called before the script's
-- first write (a script's error does not undo what it wrote before).
local function requestAsHash(requestKey)
  if redis.call('TYPE', requestKey).ok ~= 'string' then return end
  local parts = compactRequestParts(redis.call('GET', requestKey))
  if not parts then error(redis.error_reply('INVARIANT request record ' .. requestKey .. ' is neither a hash nor a compact record')) end
  local ttlMs = redis.call('PTTL', requestKey)
  redis.call('DEL', requestKey)
  redis.call('HSET', requestKey, 'pfp', parts[1], 'pst', parts[2], 'amt', parts[3], 'mp', parts[4], 'card', parts[5],
    'pans', parts[6])
  if ttlMs > 0 then redis.call('PEXPIRE', requestKey, ttlMs) end
end

-- The recorded answer of a request, in one read of its record: the answer when this very request
-- was decided before, false when its key was used for a different request (the script answers its
-- REFUSED_KEY_REUSED), nil when it is new. Reads `fingerprintField` and `answerField` ('pfp', 'pans'
-- for terminal requests) and then any more fields the script needs; the second value is everything read.
local function recordedAnswer(requestKey, fingerprint, fingerprintField, answerField, ...)
  local record = requestFields(requestKey, fingerprintField, answerField, ...)
  if not record[1] then return nil, record end
  if record[1] == fingerprint then return record[2], record end
  return false, record
end

-- Statement line: "<txnId>|<kind>|<signed amount>|<balance after>|<terminal>|<sequence>"; the amount
-- and the balance are texts, their digits (made by the caller, as for appendJournal).
local function appendStatement(statementKey, nowMs, txnId, kind, signedAmountFen, balanceAfterFen, terminalId, sequence)
  redis.call('ZADD', statementKey, nowMs,
    txnId .. '|' .. kind .. '|' .. signedAmountFen .. '|' .. balanceAfterFen .. '|' .. terminalId .. '|' .. sequence)
end
