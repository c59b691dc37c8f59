-- Trims one shard's journal and its cards' statement lines, never past the archived position.
-- Moves no money: it removes copies the archive (PostgreSQL) already holds.
--
-- KEYS[1] journalKey    the shard's journal stream
-- KEYS[2] archivedKey   the last id archived ('ms-seq'), written by the archiver after each commit
-- KEYS[3] markKey       the trim mark: the MINID of the last trim (every id below it may be gone)
-- KEYS[4..] statementKeys  statement zsets of cards with entries below ARGV[1]
-- ARGV[1] minId         remove entries with ids below this ('ms-seq'); lowered to just after the archived id
-- ARGV[2] cutoffMs      remove statement lines with a score below this ...
-- ARGV[3] maxLines      ... at most this many per card, oldest first, stopping at a line not below the mark
--
-- Returns { entries removed, statement lines removed, the mark after ('ms-seq') }.
local rcall = redis.call
local journalKey, archivedKey, markKey = KEYS[1], KEYS[2], KEYS[3]

local function parseId(text)
  local ms, seq = string.match(text or '', '^(%d+)-(%d+)$')
  if ms == nil then return nil end
  return { tonumber(ms), tonumber(seq) }
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local function format(id)
  return string.format('%.0f-%.0f', id[1], id[2])
end

local requested = parseId(ARGV[1])
local cutoffMs = tonumber(ARGV[2])
local maxLines = tonumber(ARGV[3])
if requested == nil or cutoffMs == nil or maxLines == nil or maxLines < 1 then
  return redis.error_reply('ERR journal-trim: ARGV must be minId (ms-seq), cutoffMs, maxLines >= 1')
end

local mark = parseId(rcall('GET', markKey)) or { 0, 0 }
local archived = parseId(rcall('GET', archivedKey))
if archived == nil then return { 0, 0, format(mark) } end
-- Just after the archived id: nothing at or after it may go.
local limit = { archived[1], archived[2] + 1 }
local minId = requested
if less(limit, minId) then minId = limit end
if less(minId, mark) then minId = mark end

local entries = 0
if less(mark, minId) then
  entries = rcall('XTRIM', journalKey, 'MINID', format(minId))
  rcall('SET', markKey, format(minId))
end

local lines = 0
for i = 4, #KEYS do
  local members = rcall('ZRANGEBYSCORE', KEYS[i], '-inf', '(' .. string.format('%.0f', cutoffMs), 'LIMIT', 0, maxLines)
  for _, member in ipairs(members) do
    local txn = parseId(string.match(member, '^([^|]*)'))
    -- Oldest first: the first line not yet below the mark stops this card, so Redis keeps the newest lines.
    if txn == nil or not less(txn, minId) then break end
    rcall('ZREM', KEYS[i], member)
    lines = lines + 1
  end
end
return { entries, lines, format(minId) }
