describe{ title = "Scheduled task written", severity = "medium", mitre = "T1053.003" }
local proc, text = product.proc, product.text

on("file.write", function(e)
  if text.starts_with(e.path, "/etc/cron") or text.starts_with(e.path, "/var/spool/cron/") then
    if not proc.is_package_manager(e.exe) then
      detect{ path = e.path, writer = e.exe, pid = e.pid }
    end
  end
end, { path_prefix = { "/etc/cron", "/var/spool/cron/" }, coalesce = { window = 60, key = { "path", "exe" } } })
