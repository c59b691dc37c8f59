--[[
  Bind a payment channel's payer (an Alipay buyer_user_id, a WeChat openid) to a campus card, or end
  that binding, one side at a time. Moves no money.

  Why two sides: the payer's record (which card) lives in the payer's own slot, the card's side (which
  payer, per channel) in the card's account hash. One script never touches two slots, so the domain
  (domain/channel-payers.ts) calls this once per side, in order: bind = claim the payer, then bind the
  card (releasing the claim when the card has another payer); unbind = unbind the card, then release
  the payer. A binding counts only when both sides name each other, so a crash between the two calls
  leaves at most a claim nobody honours, which the next binder of that payer takes over ('claim' with
  staleCardNo: the card the claim names but whose account no longer names this payer).

  Payer side (KEYS[1] payerKey  <prefix>:cpayer:<channel>:<payerId>  string: the card number)
    ARGV[1] 'claim'    ARGV[2] cardNo   ARGV[3] staleCardNo ('' when none may be taken over)
        2 claimed now   1 already this card's   0 held by another card (nothing changed)
    ARGV[1] 'release'  ARGV[2] cardNo
        1 released      0 not this card's claim (nothing changed)

  Card side (KEYS[1] accountKey  {L:s}:acct:<card>; field 'cpalipay' | 'cpwechat')
    ARGV[1] 'bind'     ARGV[2] field   ARGV[3] payerId   ARGV[4] ecardUserId (the e-card user the binding is
                       for: the card must still be bound to them, `eu`; '' for no such check)
        1 bound (now, or already to this payer)   15 the card has another payer of this channel
        5 unknown account   9 card cancelled
       17 the card is no longer bound to that e-card user (unbound meanwhile: nothing changed)
    ARGV[1] 'unbind'   ARGV[2] field   ARGV[3] payerId (the binding read before: compare-and-delete)
        1 unbound   16 not bound to this payer (nothing changed)   5 unknown account

  A malformed ARGV (count or format) is answered with the error reply "ERR channel-binding: ..." before any
  key is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'channel-binding'
local ANSWER_CLAIMED_NOW = 2
local ANSWER_ALREADY_THIS_CARDS = 1
local ANSWER_HELD_BY_ANOTHER = 0
local ANSWER_RELEASED = 1
local ANSWER_NOT_THIS_CARDS = 0
local ANSWER_DONE = 1
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_CANCELLED = 9
local ANSWER_BOUND_TO_OTHER = 15
local ANSWER_NOT_BOUND_TO_PAYER = 16
local ANSWER_ECARD_NOT_BOUND = 17

local rcall = redis.call
local key = KEYS[1]
local op = ARGV[1]

-- @include argv

local badArgv = argvCount(#ARGV >= 1, '2 to 4 (by op)') or argvOneOf(1, 'op', 'claim', 'release', 'bind', 'unbind')
if badArgv then return badArgv end
if op == 'claim' then
  badArgv = argvCount(#ARGV == 3, '3 for claim') or argvId(2, 'cardNo')
elseif op == 'release' then
  badArgv = argvCount(#ARGV == 2, '2 for release') or argvId(2, 'cardNo')
elseif op == 'bind' then
  badArgv = argvCount(#ARGV == 4, '4 for bind') or argvOneOf(2, 'field', 'cpalipay', 'cpwechat') or argvId(3, 'payerId')
else
  badArgv = argvCount(#ARGV == 3, '3 for unbind') or argvOneOf(2, 'field', 'cpalipay', 'cpwechat') or argvId(3, 'payerId')
end
if badArgv then return badArgv end

if op == 'claim' or op == 'release' then
  local cardNo = ARGV[2]
  local holder = rcall('GET', key)
  if op == 'claim' then
    if holder == cardNo then return ANSWER_ALREADY_THIS_CARDS end
    if holder and holder ~= ARGV[3] then return ANSWER_HELD_BY_ANOTHER end
    rcall('SET', key, cardNo)
    return ANSWER_CLAIMED_NOW
  end
  if holder ~= cardNo then return ANSWER_NOT_THIS_CARDS end
  rcall('DEL', key)
  return ANSWER_RELEASED
end

local field = ARGV[2]
local payerId = ARGV[3]
local account = rcall('HMGET', key, 'st', field, 'eu')
if not account[1] then return ANSWER_UNKNOWN_CARD end
if op == 'bind' then
  -- The holder's check (their session's card) ran before the slow part (Alipay's code exchange, the
  -- card password): an e-card unbinding in between ended the card's payers, so this bind must not
  -- give the card a payer of the holder who left.
  if ARGV[4] ~= '' and account[3] ~= ARGV[4] then return ANSWER_ECARD_NOT_BOUND end
  if account[2] == payerId then return ANSWER_DONE end
  if account[1] == 'C' then return ANSWER_CARD_CANCELLED end
  if account[2] then return ANSWER_BOUND_TO_OTHER end
  rcall('HSET', key, field, payerId)
  return ANSWER_DONE
end
-- op is 'unbind' (checked above).
if account[2] ~= payerId then return ANSWER_NOT_BOUND_TO_PAYER end
rcall('HDEL', key, field)
return ANSWER_DONE
