describe{ title = "Program started from a world-writable directory", severity = "medium", mitre = "T1204" }
local proc = product.proc

on("process.start", function(e)
  if proc.in_writable_dir(e.exe) then
    detect{ pid = e.pid, exe = e.exe, uid = e.uid }
  end
end, { exe_prefix = { "/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/" }, coalesce = { window = 300, key = { "exe" } } })
