-- Live events of bound e-cards (Keys.cardEvents): appended in the same script as the change they
-- report, so a page is never told of something that did not happen. Only bound cards (account field
-- `eu`, the bound user) have events; for every other card this costs one field read. The PUBLISH on
-- the events channel is a doorbell for the gateways ("<card>\n<event id>\n<field>\n<value>..."); a
-- gateway that missed it reads the stream when the page reconnects with its last event id.
-- About a week of a busy holder's events (resuming further back gets a resync); ~ lets Redis trim
-- whole nodes only, so a stream holds up to about twice this.
local EVENT_STREAM_MAX_LENGTH = 100
local function emitCardEvent(boundUser, eventsKey, channel, ttlSec, cardNo, fields)
  if not boundUser or boundUser == '' then return end
  local id = redis.call('XADD', eventsKey, 'MAXLEN', '~', EVENT_STREAM_MAX_LENGTH, '*', unpack(fields))
  redis.call('EXPIRE', eventsKey, ttlSec)
  redis.call('PUBLISH', channel, cardNo .. '\n' .. id .. '\n' .. table.concat(fields, '\n'))
end

-- Scripts other than authorize.lua take their event target last: KEYS[#KEYS] is the card's events
-- stream, ARGV[#ARGV - 1] the events channel and ARGV[#ARGV] how long the card's events are kept.
local function emitTrailingEvent(boundUser, cardNo, fields)
  emitCardEvent(boundUser, KEYS[#KEYS], ARGV[#ARGV - 1], tonumber(ARGV[#ARGV]), cardNo, fields)
end
