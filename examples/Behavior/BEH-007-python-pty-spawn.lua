describe{ title = "Interpreter spawning a PTY shell", severity = "high", mitre = "T1059.006" }
local proc, text = product.proc, product.text

on("process.start", { cmdline_contains = "pty" }, function(e)
  if proc.is_interpreter(e.exe) and text.has_all(e.cmdline, { "pty", "spawn" }) then
    detect{ pid = e.pid, cmdline = e.cmdline }
  end
end)
