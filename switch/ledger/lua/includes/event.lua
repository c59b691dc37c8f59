-- Live events of bound e-cards (Keys.cardEvents): appended in the same script as the change they
-- report, so a page is never told of something that did not happen. Only bound cards (account field
-- `eu`, the bound user) have events; for every other card this costs one field read. An event is one
-- stream field `e` holding "<field>\n<value>\n..." (one field is cheaper to append than ten), and the
-- PUBLISH on the events channel carries "<card>\n<event id>\n" and the same text: the gateways need
-- no read to push it; one that missed it reads the stream when the page reconnects with its last id.
-- About a week of a busy holder's events (resuming further back gets a resync); ~ lets Redis trim
-- whole nodes only, so a stream holds up to about twice this.
local EVENT_STREAM_MAX_LENGTH = 100
local function emitCardEvent(boundUser, eventsKey, channel, ttlSec, cardNo, fields)
  if not boundUser or boundUser == '' then return end
  local body = table.concat(fields, '\n')
  local id = redis.call('XADD', eventsKey, 'MAXLEN', '~', EVENT_STREAM_MAX_LENGTH, '*', 'e', body)
  redis.call('EXPIRE', eventsKey, ttlSec)
  redis.call('PUBLISH', channel, cardNo .. '\n' .. id .. '\n' .. body)
end

-- Scripts other than authorize.lua take their event target last: KEYS[#KEYS] is the card's events
-- stream, ARGV[#ARGV - 1] the events channel and ARGV[#ARGV] how long the card's events are kept.
local function emitTrailingEvent(boundUser, cardNo, fields)
  emitCardEvent(boundUser, KEYS[#KEYS], ARGV[#ARGV - 1], tonumber(ARGV[#ARGV]), cardNo, fields)
end
