describe{ title = "Host defences turned off", severity = "high", mitre = "T1562.004" }
local text = product.text

on("process.start", { cmdline_contains = { "iptables -F", "ufw disable", "setenforce 0", "systemctl stop auditd", "nft flush ruleset" } }, function(e)
  if text.has_any(e.cmdline, { "iptables -F", "ufw disable", "setenforce 0", "systemctl stop auditd", "nft flush ruleset" }) then
    detect{ pid = e.pid, uid = e.uid, cmdline = e.cmdline }
  end
end)

on("config.change", { key = "selinux.mode" }, function(e)
  if e.key == "selinux.mode" and e.value == "permissive" then detect{ key = e.key, value = e.value } end
end)
