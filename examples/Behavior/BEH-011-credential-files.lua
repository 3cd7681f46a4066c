describe{ title = "Account database written outside the package manager", severity = "high", mitre = "T1136" }
local proc = product.proc
local FILES = { ["/etc/passwd"] = true, ["/etc/shadow"] = true, ["/etc/group"] = true, ["/etc/gshadow"] = true }

on("file.write", { path_in = { "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow" } }, function(e)
  if FILES[e.path] and not proc.is_package_manager(e.exe) and proc.basename(e.exe) ~= "useradd"
    and proc.basename(e.exe) ~= "passwd" and proc.basename(e.exe) ~= "usermod" then
    detect{ path = e.path, writer = e.exe, pid = e.pid }
  end
end)
