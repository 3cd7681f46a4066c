describe{ title = "Connection to a port favoured by remote-access tools", severity = "medium", mitre = "T1571" }
local net = product.net

on("network.connect", function(e)
  if net.is_suspicious_port(e.rport) and not net.is_loopback(e.remote) then
    detect{ remote = e.remote, rport = e.rport, uid = e.uid }
  end
end, { rport_in = { 4444, 1337, 31337, 6666, 6667, 9001 }, coalesce = { window = 120, key = { "remote", "rport" } } })
