describe{ title = "Crypto-mining activity", severity = "high", mitre = "T1496" }
local net, text = product.net, product.text

on("process.start", { cmdline_contains = { "stratum+tcp://", "stratum+ssl://", "--donate-level", "xmrig" } }, function(e)
  if text.has_any(e.cmdline, { "stratum+tcp://", "stratum+ssl://", "--donate-level", "xmrig" }) then
    detect{ pid = e.pid, cmdline = e.cmdline }
  end
end)

on("network.connect", function(e)
  if net.is_mining_port(e.rport) and not net.is_private(e.remote) then
    detect{ title = "Connection to a mining-pool port", remote = e.remote, rport = e.rport, severity = "medium" }
  end
end, { rport_in = { 3333, 4444, 5555, 7777, 14444, 45700 }, coalesce = { window = 300, key = { "remote", "rport" } } })
