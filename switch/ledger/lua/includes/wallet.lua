-- Shared by the small-wallet scripts (water-debit.lua, settle.lua); both declare ANSWER_APPROVED.

-- Records a wallet answer under the request key (pst: W approved wallet move, never reversed; D
-- declined) so a retry replays it.
local function recordWalletAnswer(requestKey, fingerprint, cardNo, requestTtlSec, code, answer)
  local state = 'D'
  if code == ANSWER_APPROVED then state = 'W' end
  redis.call('HSET', requestKey, 'pfp', fingerprint, 'pans', answer, 'pst', state, 'card', cardNo)
  redis.call('EXPIRE', requestKey, requestTtlSec)
  return answer
end

local function isWholeFenWithin(value, low, high)
  return value ~= nil and value == math.floor(value) and value >= low and value <= high
end
