-- PostgreSQL (Debian: postgresql-<major>). Its data directory is rewritten
-- all day (heap files, WAL); scanning it on access slows every query and
-- can lock files the server needs. Each cluster's data_directory comes from
-- its postgresql.conf, falling back to Debian's default layout. The server
-- binaries' constant file churn is also noise for Behavior rules.
app {
  id = "postgresql",
  description = "PostgreSQL server: cluster data directories and server processes",
  detect = function()
    for _, a in ipairs(apps.installed()) do
      local major = a.name:match("^postgresql%-(%d+)$")
      if major then
        local etc = "/etc/postgresql/" .. major
        for _, cluster in ipairs(fs.list(etc)) do
          local conf = fs.read(etc .. "/" .. cluster .. "/postgresql.conf") or ""
          local dir = conf:match("\ndata_directory%s*=%s*'([^']+)'")
            or ("/var/lib/postgresql/" .. major .. "/" .. cluster)
          exclude {
            kind = "path",
            value = dir,
            scope = { "onAccess", "scan" },
            reason = "PostgreSQL " .. major .. "/" .. cluster .. " data directory (" .. a.version .. ")",
          }
        end
        exclude {
          kind = "process",
          value = "/usr/lib/postgresql/" .. major .. "/bin",
          scope = { "behavior" },
          reason = "PostgreSQL " .. major .. " server processes",
        }
      end
    end
  end,
}
