describe{ title = "Hidden executable started", severity = "medium", mitre = "T1564.001" }
local proc = product.proc

on("process.start", function(e)
  if proc.is_hidden(e.exe) then
    detect{ pid = e.pid, exe = e.exe }
  end
end, { exe_contains = ".", coalesce = { window = 300, key = { "exe" } } })
