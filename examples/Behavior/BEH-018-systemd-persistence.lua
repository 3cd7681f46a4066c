describe{ title = "Service unit installed outside the package manager", severity = "medium", mitre = "T1543.002" }
local proc, text = product.proc, product.text

on("file.write", function(e)
  if (text.starts_with(e.path, "/etc/systemd/system/") or text.starts_with(e.path, "/lib/systemd/system/"))
    and text.ends_with(e.path, ".service") and not proc.is_package_manager(e.exe) then
    detect{ path = e.path, writer = e.exe }
  end
end, { path_prefix = { "/etc/systemd/system/", "/lib/systemd/system/" }, coalesce = { window = 60, key = { "path" } } })
