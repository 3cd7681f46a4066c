describe{ title = "Base64 payload decoded into a shell", severity = "high", mitre = "T1140" }
local text = product.text

on("process.start", { cmdline_contains = { "base64 -d", "base64 --decode" } }, function(e)
  local cmd = e.cmdline
  if text.has_any(cmd, { "base64 -d", "base64 --decode" }) and text.has_any(cmd, { "| sh", "| bash", "|sh", "|bash" }) then
    detect{ pid = e.pid, cmdline = cmd, encoded = text.base64_run(cmd, 40) }
  end
end)
