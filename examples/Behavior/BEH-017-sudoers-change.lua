describe{ title = "sudo rules changed", severity = "high", mitre = "T1548.003" }
local text = product.text
local proc = product.proc

on("file.write", { path_prefix = "/etc/sudoers" }, function(e)
  if (e.path == "/etc/sudoers" or text.starts_with(e.path, "/etc/sudoers.d/")) and not proc.is_package_manager(e.exe) then
    detect{ path = e.path, writer = e.exe }
  end
end)

on("config.change", { key_prefix = "sudoers." }, function(e)
  if text.starts_with(e.key, "sudoers.") then detect{ key = e.key, value = e.value, writer = e.exe } end
end)
