describe{ title = "Netcat binding or connecting a shell", severity = "critical", mitre = "T1059" }
local proc, text = product.proc, product.text

on("process.start", { cmdline_contains = { " -e /bin/sh", " -e /bin/bash", " -c sh", "exec:/bin/sh" } }, function(e)
  if proc.is_nettool(e.exe) and text.has_any(e.cmdline, { " -e /bin/sh", " -e /bin/bash", " -c sh", "exec:/bin/sh" }) then
    detect{ pid = e.pid, uid = e.uid, cmdline = e.cmdline }
  end
end)
