-- Process classification: what kind of program an event's exe is.
local text = product.text
local M = {}

local SHELLS = { sh = true, bash = true, dash = true, zsh = true, ksh = true, ash = true, busybox = true }
local INTERPRETERS = { python = true, python2 = true, python3 = true, perl = true, ruby = true, php = true, node = true, lua = true }
local DOWNLOADERS = { curl = true, wget = true, fetch = true, aria2c = true }
local NETTOOLS = { nc = true, ncat = true, netcat = true, socat = true, telnet = true }
local PACKAGE_MANAGERS = { apt = true, ["apt-get"] = true, dpkg = true, rpm = true, dnf = true, yum = true, unattended = true }
local WRITABLE_DIRS = { "/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/" }

function M.basename(p)
  if type(p) ~= "string" then return "" end
  return string.match(p, "([^/]+)$") or p
end

function M.dirname(p)
  if type(p) ~= "string" then return "" end
  return string.match(p, "^(.*)/[^/]*$") or ""
end

local function in_set(set, p)
  local b = M.basename(p)
  return set[b] == true or set[string.match(b, "^([%a%-]+)") or ""] == true
end

function M.is_shell(p) return in_set(SHELLS, p) end
function M.is_interpreter(p) return in_set(INTERPRETERS, p) end
function M.is_downloader(p) return in_set(DOWNLOADERS, p) end
function M.is_nettool(p) return in_set(NETTOOLS, p) end
function M.is_package_manager(p) return in_set(PACKAGE_MANAGERS, p) end

--- Under a world-writable location (where dropped payloads run from).
function M.in_writable_dir(p)
  if type(p) ~= "string" then return false end
  for i = 1, #WRITABLE_DIRS do
    if text.starts_with(p, WRITABLE_DIRS[i]) then return true end
  end
  return false
end

function M.is_hidden(p)
  return string.sub(M.basename(p), 1, 1) == "."
end

return M
