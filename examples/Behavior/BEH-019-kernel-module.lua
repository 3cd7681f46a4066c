describe{ title = "Kernel module loaded from a writable location", severity = "high", mitre = "T1547.006" }
local proc, text = product.proc, product.text

on("process.start", { cmdline_contains = { "/tmp/", "/dev/shm/", "/var/tmp/" } }, function(e)
  local b = proc.basename(e.exe)
  if (b == "insmod" or b == "modprobe") and text.has_any(e.cmdline, { "/tmp/", "/dev/shm/", "/var/tmp/" }) then
    detect{ pid = e.pid, cmdline = e.cmdline }
  end
end)
