--[[
  Bind an e-card to a user (a WeCom / WeChat identity) or end that binding. Moves no money. One user
  per card here (the account's `eu`); one card per user is the user record's job (domain/ecard.ts
  holds the user's lock while it calls this). Binding and unbinding move the QR epoch on (`eq`) and
  start the card's event stream afresh, so nothing of an earlier binding reaches the new one.

  KEYS[1] accountKey  {L:s}:acct:<card>
  KEYS[2] eventsKey   {L:s}:ev:<card>

  ARGV[1] op          'bind' | 'unbind'
  ARGV[2] userId      namespaced: 'wecom:<userid>' or 'wechat:<openid>'
  ARGV[3] nowMs
  ARGV[4] eventsChannel  (unbind) told "<card>\n0-0\nk\nunbound": gateways close the binding's sockets
  ARGV[5] cardNo

  Returns {code, epoch}:
    bind:   1 bound now (or already bound to this user: nothing changed)
            3 card lost   4 card frozen   9 card cancelled   5 unknown account
           14 the card was never tapped since migration (not synced): the e-card does not work yet
           15 the card is bound to another user
    unbind: 1 unbound     16 not bound to this user (nothing changed)   5 unknown account
]]
local rcall = redis.call
local accountKey = KEYS[1]
local eventsKey = KEYS[2]
local op = ARGV[1]
local userId = ARGV[2]

local account = rcall('HMGET', accountKey, 'st', 'sync', 'eu', 'eq')
if not account[1] then return { 5, 0 } end
local epoch = tonumber(account[4] or '0')

if op == 'bind' then
  if account[3] == userId then return { 1, epoch } end
  if account[1] == 'L' then return { 3, epoch } end
  if account[1] == 'F' then return { 4, epoch } end
  if account[1] == 'C' then return { 9, epoch } end
  if account[2] ~= '1' then return { 14, epoch } end
  if account[3] then return { 15, epoch } end
  epoch = rcall('HINCRBY', accountKey, 'eq', 1)
  rcall('HSET', accountKey, 'eu', userId, 'ebt', ARGV[3])
  rcall('DEL', eventsKey)
  return { 1, epoch }
end
if op == 'unbind' then
  if account[3] ~= userId then return { 16, epoch } end
  epoch = rcall('HINCRBY', accountKey, 'eq', 1)
  rcall('HDEL', accountKey, 'eu', 'ebt')
  rcall('DEL', eventsKey)
  rcall('PUBLISH', ARGV[4], ARGV[5] .. '\n0-0\nk\nunbound')
  return { 1, epoch }
end
return redis.error_reply('ecard-binding.lua: unknown op ' .. tostring(op))
