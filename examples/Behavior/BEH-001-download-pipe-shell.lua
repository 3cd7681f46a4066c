describe{ title = "Download piped into a shell", severity = "high", mitre = "T1059.004" }
local proc, text = product.proc, product.text

on("process.start", { cmdline_contains = { "curl ", "wget " } }, function(e)
  if not (proc.is_shell(e.exe) or proc.is_downloader(e.exe)) then return end
  local cmd = e.cmdline
  if text.has_any(cmd, { "curl ", "wget " }) and text.has_any(cmd, { "| sh", "|sh", "| bash", "|bash" }) then
    detect{ pid = e.pid, ppid = e.ppid, uid = e.uid, cmdline = cmd }
  end
end)
