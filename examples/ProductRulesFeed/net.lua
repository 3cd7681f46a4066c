-- Network classification for network.connect events.
local M = {}

local SUSPICIOUS_PORTS = { [4444] = true, [1337] = true, [31337] = true, [6666] = true, [6667] = true, [9001] = true }
local MINING_PORTS = { [3333] = true, [4444] = true, [5555] = true, [7777] = true, [14444] = true, [45700] = true }

local function octets(ip)
  local a, b, c, d = string.match(ip or "", "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  return tonumber(a), tonumber(b), tonumber(c), tonumber(d)
end

function M.is_loopback(ip)
  local a = octets(ip)
  return a == 127 or ip == "::1"
end

function M.is_private(ip)
  local a, b = octets(ip)
  if not a then return false end
  return a == 10 or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168) or a == 127
end

function M.is_suspicious_port(port) return SUSPICIOUS_PORTS[tonumber(port) or -1] == true end
function M.is_mining_port(port) return MINING_PORTS[tonumber(port) or -1] == true end

return M
