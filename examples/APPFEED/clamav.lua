-- ClamAV (Debian: clamav, clamav-freshclam). Its signature databases are,
-- by design, full of malware patterns: other scanners flag them, and
-- freshclam rewrites them several times a day. The directory comes from
-- DatabaseDirectory in freshclam.conf / clamd.conf.
app {
  id = "clamav",
  description = "ClamAV: signature database directory and the freshclam updater",
  detect = function()
    local pkg = apps.get("clamav") or apps.get("clamav-freshclam") or apps.get("clamav-daemon")
    if not pkg then return end
    local db = "/var/lib/clamav"
    for _, f in ipairs({ "/etc/clamav/freshclam.conf", "/etc/clamav/clamd.conf" }) do
      local text = fs.read(f) or ""
      db = text:match("\nDatabaseDirectory%s+(/%S+)") or db
    end
    exclude {
      kind = "path",
      value = db,
      scope = { "onAccess", "scan" },
      reason = "ClamAV signature databases (" .. pkg.version .. ")",
    }
    exclude { kind = "process", value = "freshclam", scope = { "behavior" }, reason = "ClamAV signature updater" }
  end,
}
