-- Live events of bound e-cards (Keys.cardEvents): appended in the same script as the change they
-- report, so a page is never told of something that did not happen. Only bound cards (account field
-- `eu`, the bound user) have events; for every other card this costs one field read. An event is one
-- stream field `e` holding "<field>\n<value>\n..." (one field is cheaper to append than ten), and the
-- PUBLISH on the events channel carries "<card>\n<event id>\n" and the same text: the gateways need
-- no read to push it; one that missed it reads the stream when the page reconnects with its last id.
-- About a week of a busy holder's events (resuming further back gets a resync); ~ lets Redis trim
-- whole nodes only, so a stream holds up to about twice this.
local EVENT_STREAM_MAX_LENGTH = 100

-- Appends the event to the card's stream; returns its id and text.
local function appendCardEvent(eventsKey, fields)
  local body = table.concat(fields, '\n')
  return redis.call('XADD', eventsKey, 'MAXLEN', '~', EVENT_STREAM_MAX_LENGTH, '*', 'e', body), body
end

-- The doorbell rings only while a page of the card is open somewhere: a gateway with a socket of the
-- card keeps the account's `ew` (watched until, ms) a minute and a half ahead. Most payments of bound
-- cards happen with no page open; they are recorded in the stream and announced to nobody.
local function announceCardEvent(watchedUntil, channel, cardNo, id, body)
  local watchedUntilMs = tonumber(watchedUntil)
  if not watchedUntilMs then return end
  local now = redis.call('TIME')
  if watchedUntilMs < tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) then return end
  redis.call('PUBLISH', channel, cardNo .. '\n' .. id .. '\n' .. body)
end

local function emitCardEvent(boundUser, accountKey, eventsKey, channel, ttlSec, cardNo, fields)
  if not boundUser or boundUser == '' then return end
  local id, body = appendCardEvent(eventsKey, fields)
  redis.call('EXPIRE', eventsKey, ttlSec)
  announceCardEvent(redis.call('HGET', accountKey, 'ew'), channel, cardNo, id, body)
end

-- authorize.lua runs per payment and already reads and writes the account hash, so it extends the
-- stream's expiry only when the account's `evx` (when it last did, in seconds of the switch's clock)
-- is older than an eighth of eventTtlSec: a stream is kept at least 7/8 of eventTtlSec after its
-- last payment event (and every other script's event extends it to the whole of it), for one
-- EXPIRE per card a day or so instead of one per payment. `evx` is dropped with the stream
-- (ecard-binding.lua), so a new stream is always given its expiry with its first event. A stamp
-- from a clock ahead of this one (age < 0) counts as stale.
local function cardEventsExpiryDue(extendedAtSec, nowSec, ttlSec)
  local age = nowSec - (tonumber(extendedAtSec) or -1e15)
  return age < 0 or age >= math.floor(ttlSec / 8)
end

-- Scripts other than authorize.lua take their event target last: KEYS[#KEYS] is the card's events
-- stream, ARGV[#ARGV - 1] the events channel and ARGV[#ARGV] how long the card's events are kept. The
-- account is KEYS[1] unless the script names it.
local function emitTrailingEvent(boundUser, cardNo, fields, accountKey)
  emitCardEvent(boundUser, accountKey or KEYS[1], KEYS[#KEYS], ARGV[#ARGV - 1], tonumber(ARGV[#ARGV]), cardNo, fields)
end
