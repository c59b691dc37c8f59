--[[
  The serial directory's side of a card replacement (the card office's ReplaceCard). Moves no money.

  Why: replace-card.lua moves an account to a new serial, but the directory entry of that serial
  (serial:<serial> -> card number) is in another slot than the account, so it is claimed before the
  script runs (a serial already on another card is refused and never moved) and, when the script then
  refuses, given back: a refused request changes nothing, and the blank card it offered can be issued
  to another card. Several requests of one card may lean on one claim at once (copies of a request, or
  a second request id for the same blank card), so each call holds it with its own token until it ends:
  a refusal releases the entry only when it was made by a replacement that never went through, no other
  call still holds it, and the card has not got the serial meanwhile.

  KEYS[1] serialKey  <prefix>:serial:<serial>                     string: the card number (the directory)
  KEYS[2] holdKey    <prefix>:serialhold:{<prefix>:serial:<serial>}   hash, same slot as KEYS[1]:
                     '.new' -> '1' while the entry was made by a replacement claim that no replacement
                     confirmed yet (an entry of the import or of a replacement done is never released);
                     <token> -> <nowMs> for each call holding the claim now.

  ARGV[1] op  'claim' | 'settle' | 'release' | 'takeover'
    claim    ARGV[2] cardNo, ARGV[3] token, ARGV[4] nowMs, ARGV[5] staleMs
             Points the serial at the card unless it names another card; holds it with the token.
             Returns {code, holder, stale}: code 2 claimed now, 1 already this card's (held now too),
             0 held by another card (nothing changed): holder is that card, and stale is 1 when its entry
             was never confirmed and no call has held it for staleMs (a claim left by a crashed switch).
    settle   ARGV[2] cardNo, ARGV[3] token
             replace-card.lua answered that the card has (or had) this serial: the token lets go and the
             entry is confirmed for good. Returns 1.
    release  ARGV[2] cardNo, ARGV[3] token, ARGV[4] cardHasSerial ('1' when the account's serial is this
             one: read by the caller after the refusal)
             replace-card.lua refused: the token lets go, and the entry is deleted when it still names the
             card, was made by a replacement claim never confirmed, no other token holds it and the card
             does not have the serial. Returns 1 released, 0 kept.
    takeover ARGV[2] cardNo, ARGV[3] token, ARGV[4] nowMs, ARGV[5] staleMs, ARGV[6] staleCardNo
             The caller found the claim stale (claim answered stale) and checked that staleCardNo never
             had the serial (its account's serial and replacement records): when the entry still names
             staleCardNo and is still stale, it is pointed at cardNo and held with the token.
             Returns 2 claimed now, 0 held by another card (nothing changed).

  A malformed ARGV (count or format) is answered with the error reply "ERR serial-claim: ..." before any
  key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'serial-claim'
local ANSWER_CLAIMED_NOW = 2
local ANSWER_ALREADY_THIS_CARDS = 1
local ANSWER_HELD_BY_ANOTHER = 0
local ANSWER_SETTLED = 1
local ANSWER_RELEASED = 1
local ANSWER_KEPT = 0

local rcall = redis.call
local serialKey = KEYS[1]
local holdKey = KEYS[2]
local op = ARGV[1]
local NEW = '.new'

-- @include argv

local badArgv = argvCount(#ARGV >= 1, '3 to 6 (by op)') or argvOneOf(1, 'op', 'claim', 'settle', 'release', 'takeover')
if badArgv then return badArgv end
if op == 'claim' then
  badArgv = argvCount(#ARGV == 5, '5 for claim') or argvId(2, 'cardNo') or argvId(3, 'token')
    or argvInteger(4, 'nowMs', 0) or argvInteger(5, 'staleMs', 1)
elseif op == 'settle' then
  badArgv = argvCount(#ARGV == 3, '3 for settle') or argvId(2, 'cardNo') or argvId(3, 'token')
elseif op == 'release' then
  badArgv = argvCount(#ARGV == 4, '4 for release') or argvId(2, 'cardNo') or argvId(3, 'token') or argvFlag(4, 'cardHasSerial')
else
  badArgv = argvCount(#ARGV == 6, '6 for takeover') or argvId(2, 'cardNo') or argvId(3, 'token')
    or argvInteger(4, 'nowMs', 0) or argvInteger(5, 'staleMs', 1) or argvId(6, 'staleCardNo')
end
if badArgv then return badArgv end

local cardNo = ARGV[2]
local token = ARGV[3]

-- Never confirmed, and no call has held it since nowMs - staleMs.
local function isStale(nowMs, staleMs)
  if rcall('HEXISTS', holdKey, NEW) == 0 then return false end
  local hold = rcall('HGETALL', holdKey)
  for i = 1, #hold, 2 do
    if hold[i] ~= NEW and tonumber(hold[i + 1]) > nowMs - staleMs then return false end
  end
  return true
end

local holder = rcall('GET', serialKey)

if op == 'claim' then
  local nowMs = tonumber(ARGV[4])
  if holder and holder ~= cardNo then
    return { ANSWER_HELD_BY_ANOTHER, holder, isStale(nowMs, tonumber(ARGV[5])) and 1 or 0 }
  end
  local code = ANSWER_ALREADY_THIS_CARDS
  if not holder then
    rcall('SET', serialKey, cardNo)
    rcall('DEL', holdKey)
    rcall('HSET', holdKey, NEW, '1')
    code = ANSWER_CLAIMED_NOW
  end
  rcall('HSET', holdKey, token, ARGV[4])
  return { code, '', 0 }
end

if op == 'settle' then
  rcall('HDEL', holdKey, token)
  if holder == cardNo then rcall('HDEL', holdKey, NEW) end
  return ANSWER_SETTLED
end

if op == 'release' then
  rcall('HDEL', holdKey, token)
  if holder ~= cardNo or rcall('HEXISTS', holdKey, NEW) == 0 then return ANSWER_KEPT end
  if ARGV[4] == '1' then
    rcall('HDEL', holdKey, NEW)
    return ANSWER_KEPT
  end
  if rcall('HLEN', holdKey) > 1 then return ANSWER_KEPT end
  rcall('DEL', serialKey, holdKey)
  return ANSWER_RELEASED
end

-- takeover
if holder ~= ARGV[6] or not isStale(tonumber(ARGV[4]), tonumber(ARGV[5])) then return ANSWER_HELD_BY_ANOTHER end
rcall('SET', serialKey, cardNo)
rcall('DEL', holdKey)
rcall('HSET', holdKey, NEW, '1', token, ARGV[4])
return ANSWER_CLAIMED_NOW
