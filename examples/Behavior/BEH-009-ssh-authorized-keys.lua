describe{ title = "SSH authorized_keys modified", severity = "high", mitre = "T1098.004" }
local text = product.text

on("file.write", function(e)
  if text.ends_with(e.path, "/.ssh/authorized_keys") or text.ends_with(e.path, "/.ssh/authorized_keys2") then
    detect{ path = e.path, writer = e.exe, pid = e.pid }
  end
end, { path_suffix = { "/.ssh/authorized_keys", "/.ssh/authorized_keys2" }, coalesce = { window = 60, key = { "path" } } })
