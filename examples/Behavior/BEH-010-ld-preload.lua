describe{ title = "Dynamic linker preload configured", severity = "high", mitre = "T1574.006" }

on("file.write", { path = "/etc/ld.so.preload" }, function(e)
  if e.path == "/etc/ld.so.preload" then detect{ path = e.path, writer = e.exe } end
end)

on("config.change", { key = "env.LD_PRELOAD" }, function(e)
  if e.key == "env.LD_PRELOAD" and e.value ~= "" then detect{ key = e.key, value = e.value, writer = e.exe } end
end)
