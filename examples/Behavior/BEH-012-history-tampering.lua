describe{ title = "Shell history cleared or disabled", severity = "low", mitre = "T1070.003" }
local text = product.text

on("process.start", { cmdline_contains = { "history -c", "unset HISTFILE", "HISTFILE=/dev/null", "HISTSIZE=0" } }, function(e)
  if text.has_any(e.cmdline, { "history -c", "unset HISTFILE", "HISTFILE=/dev/null", "HISTSIZE=0" }) then
    detect{ pid = e.pid, cmdline = e.cmdline }
  end
end)

on("file.write", function(e)
  if text.ends_with(e.path, "/.bash_history") and e.bytes == 0 then
    detect{ path = e.path, writer = e.exe }
  end
end, { path_suffix = "/.bash_history", coalesce = { window = 600, key = { "path" } } })
