-- rsyslog (Debian: rsyslog). Its disk-assisted queues and state files in
-- the work directory are appended to on every log line; scanning them on
-- access costs CPU on the logging path. The directory is $WorkDirectory
-- (legacy) or global(workDirectory="…") in rsyslog.conf.
app {
  id = "rsyslog",
  description = "rsyslog: queue and state work directory",
  detect = function()
    local pkg = apps.get("rsyslog")
    if not pkg then return end
    local conf = fs.read("/etc/rsyslog.conf") or ""
    local dir = conf:match("\n%$WorkDirectory%s+(/%S+)")
      or conf:match('workDirectory%s*=%s*"(/[^"]+)"')
      or "/var/spool/rsyslog"
    exclude {
      kind = "path",
      value = dir,
      scope = { "onAccess" },
      reason = "rsyslog work directory (" .. pkg.version .. ")",
    }
  end,
}
