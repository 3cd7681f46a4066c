-- An administrator's rule (USERAPPFEED, signed with the tenant's key):
-- the nightly backup job reads every file on the machine and writes its
-- archive under /srv/backup. Its process should not trip Behavior rules
-- for mass file access, and the archive (one huge, constantly growing
-- file) is not worth scanning on access. Detected by the tool's package
-- (rsync, or GNU tar) and the job's configuration under /etc.
app {
  id = "nightly-backup",
  description = "Nightly backup job: archive directory and the backup tool's process",
  detect = function()
    local tool, pkg = "rsync", apps.get("rsync")
    if not pkg then tool, pkg = "tar", apps.get("tar") end
    if not pkg then return end
    exclude { kind = "process", value = tool, scope = { "behavior" }, reason = "nightly backup (" .. tool .. " " .. pkg.version .. ")" }
    local conf = fs.read("/etc/outpost-backup.conf")
    local target = conf and conf:match("target%s*=%s*(/%S+)") or "/srv/backup"
    exclude { kind = "path", value = target, scope = { "onAccess" }, reason = "backup archive" }
  end,
}
