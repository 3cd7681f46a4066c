describe{ title = "Mass file rewrite (ransomware-like)", severity = "critical", mitre = "T1486" }
local text = product.text

on("file.write", function(e)
  if text.has_any(e.path, { ".locked", ".encrypted", ".crypt", "README_DECRYPT" }) then
    detect{ pid = e.pid, writer = e.exe, example = e.path }
  end
end, { path_contains = { ".locked", ".encrypted", ".crypt", "README_DECRYPT" }, min_rate = { count = 50, window = 10, key = { "pid" } }, first = { n = 1, window = 600, key = { "pid" } } })
