describe{ title = "Interactive shell redirected to a TCP socket", severity = "critical", mitre = "T1059.004" }
local text = product.text

on("process.start", { cmdline_contains = "/dev/tcp/" }, function(e)
  if text.has_all(e.cmdline, { "/dev/tcp/", ">&" }) then
    detect{ pid = e.pid, uid = e.uid, cmdline = e.cmdline }
  end
end)
