--[[
  Bind an e-card to a user (a WeCom / WeChat identity) or end that binding. Moves no money. One user
  per card here (the account's `eu`); one card per user is the user record's job (domain/ecard.ts
  holds the user's lock while it calls this). Binding and unbinding move the QR epoch on (`eq`) and
  start the card's event stream afresh, so nothing of an earlier binding reaches the new one.

  Unbinding also ends the card's payment-code payers (`cpalipay`, `cpwechat`, channel-binding.lua): the
  leaving holder bound them, and a binding counts only while the card names its payer, so from this
  script on that holder's Alipay / WeChat payment code no longer pays from the card. The payers' own
  records (`cpayer:*`, another slot) are released afterwards by the domain (domain/ecard.ts), to which
  this script answers them; a record left behind names a card that no longer names it back, which is no
  binding, and the payer's next binding takes it over. A bind ends the payers an unbound card still
  names (left by unbindings made before this rule): they were never the new holder's.

  KEYS[1] accountKey  {L:s}:acct:<card>
  KEYS[2] eventsKey   {L:s}:ev:<card>

  ARGV[1] op          'bind' | 'unbind'
  ARGV[2] userId      namespaced: 'wecom:<userid>' or 'wechat:<openid>'
  ARGV[3] nowMs
  ARGV[4] eventsChannel  (unbind) told "<card>\n0-0\nk\nunbound": gateways close the binding's sockets
  ARGV[5] cardNo

  Returns {code, epoch, alipayPayer, wechatPayer}: the payers the call ended ('' when none; always ''
  for a refusal and for a bind that changed nothing):
    bind:   1 bound now (or already bound to this user: nothing changed)
            3 card lost   4 card frozen   9 card cancelled   5 unknown account
           14 the card was never tapped since migration (not synced): the e-card does not work yet
           15 the card is bound to another user
    unbind: 1 unbound     16 not bound to this user (nothing changed)   5 unknown account

  A malformed ARGV (count or format) is answered with the error reply "ERR ecard-binding: ..." before any key
  is read or written (includes/argv.lua; scripts.ts checks the same before sending).
]]
local SCRIPT = 'ecard-binding'
local ANSWER_DONE = 1
local ANSWER_CARD_LOST = 3
local ANSWER_CARD_FROZEN = 4
local ANSWER_UNKNOWN_CARD = 5
local ANSWER_CARD_CANCELLED = 9
local ANSWER_NOT_SYNCED = 14
local ANSWER_BOUND_TO_OTHER = 15
local ANSWER_NOT_BOUND_TO_USER = 16

local rcall = redis.call
local accountKey = KEYS[1]
local eventsKey = KEYS[2]
local op = ARGV[1]
local userId = ARGV[2]

-- @include argv

local badArgv = argvCount(#ARGV == 5, '5')
  or argvOneOf(1, 'op', 'bind', 'unbind') or argvId(2, 'userId') or argvInteger(3, 'nowMs', 0)
  or argvId(4, 'eventsChannel') or argvId(5, 'cardNo')
if badArgv then return badArgv end

local account = rcall('HMGET', accountKey, 'st', 'sync', 'eu', 'eq')
if not account[1] then return { ANSWER_UNKNOWN_CARD, 0, '', '' } end
local epoch = tonumber(account[4] or '0')

if op == 'bind' then
  if account[3] == userId then return { ANSWER_DONE, epoch, '', '' } end
  if account[1] == 'L' then return { ANSWER_CARD_LOST, epoch, '', '' } end
  if account[1] == 'F' then return { ANSWER_CARD_FROZEN, epoch, '', '' } end
  if account[1] == 'C' then return { ANSWER_CARD_CANCELLED, epoch, '', '' } end
  if account[2] ~= '1' then return { ANSWER_NOT_SYNCED, epoch, '', '' } end
  if account[3] then return { ANSWER_BOUND_TO_OTHER, epoch, '', '' } end
  -- Payers still named by an unbound card were left by a holder who unbound before unbinding ended
  -- them (ledgers written before): they are not the new holder's, so they end here too.
  local leftPayers = rcall('HMGET', accountKey, 'cpalipay', 'cpwechat')
  epoch = rcall('HINCRBY', accountKey, 'eq', 1)
  rcall('HSET', accountKey, 'eu', userId, 'ebt', ARGV[3])
  -- A new stream: its first payment event gives it its expiry (authorize.lua reads evx, event.lua).
  rcall('HDEL', accountKey, 'evx', 'cpalipay', 'cpwechat')
  rcall('DEL', eventsKey)
  return { ANSWER_DONE, epoch, leftPayers[1] or '', leftPayers[2] or '' }
end
-- op is 'unbind' (checked above).
if account[3] ~= userId then return { ANSWER_NOT_BOUND_TO_USER, epoch, '', '' } end
local payers = rcall('HMGET', accountKey, 'cpalipay', 'cpwechat')
epoch = rcall('HINCRBY', accountKey, 'eq', 1)
rcall('HDEL', accountKey, 'eu', 'ebt', 'evx', 'cpalipay', 'cpwechat')
rcall('DEL', eventsKey)
rcall('PUBLISH', ARGV[4], ARGV[5] .. '\n0-0\nk\nunbound')
return { ANSWER_DONE, epoch, payers[1] or '', payers[2] or '' }
