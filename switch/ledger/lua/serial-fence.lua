--[[
  The card's side of taking over a stale serial claim (the card office's ReplaceCard). Moves no money.

  Why: a replacement claims the new serial's directory entry (serial-claim.lua, the serial's slot) and then
  runs replace-card.lua (the card's slot). A claim its switch never confirmed is taken over by another
  card after SERIAL_CLAIM_STALE_MS, but the first switch may only have stalled (a paused process, a
  command held in its client's queue): its replace-card.lua could still run after the takeover and move
  its card onto a serial the directory gives to the other card, stranding that account. So before the
  takeover, this script fences the stale card off the serial in the card's own slot: atomically, when the
  card never had the serial (its 'ser', 'oser' and replacement records), it writes '!<serial>' in the
  card's replacement hash, and replace-card.lua refuses that card that serial from then on (request ids
  cannot hold '!'). A takeover that then fails lifts its own fence again (unfence, compare-and-delete by
  token), so the card's own retry can still get the serial it holds.

  KEYS[1] accountKey       {L:s}:acct:<card>
  KEYS[2] replacementsKey  {L:s}:rpl:<card>   hash: requestId -> "<newSerial>|<code>|<oldSerial>", '!<serial>' -> token

  ARGV[1] op 'fence' | 'unfence'
  ARGV[2] serial
  ARGV[3] token (the takeover's)

  fence    Returns 1 fenced (the card never had the serial, or has no account: the fence is written), 0 the
           card has or had the serial (nothing written).
  unfence  Deletes the fence when it still carries the token. Returns 1 lifted, 0 kept.

  A malformed ARGV (count or format) is answered with the error reply "ERR serial-fence: ..." before any
  key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'serial-fence'
local ANSWER_FENCED = 1
local ANSWER_HAD_SERIAL = 0
local ANSWER_UNFENCED = 1
local ANSWER_FENCE_KEPT = 0

local rcall = redis.call
local accountKey = KEYS[1]
local replacementsKey = KEYS[2]

-- @include argv

local badArgv = argvCount(#ARGV == 3, '3') or argvOneOf(1, 'op', 'fence', 'unfence') or argvId(2, 'serial') or argvId(3, 'token')
if badArgv then return badArgv end

local serial = ARGV[2]
local token = ARGV[3]
local fenceField = '!' .. serial

if ARGV[1] == 'unfence' then
  if rcall('HGET', replacementsKey, fenceField) ~= token then return ANSWER_FENCE_KEPT end
  rcall('HDEL', replacementsKey, fenceField)
  return ANSWER_UNFENCED
end

local account = rcall('HMGET', accountKey, 'ser', 'oser')
if account[1] == serial or account[2] == serial then return ANSWER_HAD_SERIAL end
local records = rcall('HGETALL', replacementsKey)
for i = 1, #records, 2 do
  if string.sub(records[i], 1, 1) ~= '!' then
    local newSerial, _, oldSerial = string.match(records[i + 1], '^([^|]*)|(%d)|(.*)$')
    if newSerial == serial or oldSerial == serial then return ANSWER_HAD_SERIAL end
  end
end
rcall('HSET', replacementsKey, fenceField, token)
return ANSWER_FENCED
