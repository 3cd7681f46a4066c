-- Fleet state: agents' latest heartbeats, release state, the planner lease.
-- Written in the SQL subset SQLite and PostgreSQL share; applied once, in
-- order, by fleet/db/migrate.ts, which records it in schema_version.

-- The latest heartbeat of every agent: one row, upserted.
CREATE TABLE agents (
  agent_key     TEXT PRIMARY KEY,           -- tenant/agentId
  tenant        TEXT NOT NULL,
  grp           TEXT NOT NULL,
  received_at   BIGINT NOT NULL,            -- server clock, ms
  health        TEXT NOT NULL,              -- green | amber | red
  rejected      INTEGER NOT NULL,
  agent_version TEXT NOT NULL
);
-- Active agents per group: an index range per group, never a table scan.
CREATE INDEX agents_grp_received ON agents (grp, received_at);

-- Latest content state per agent and type (replaced with each heartbeat).
-- grp/received_at/health are copied from the agent so the gate aggregate
-- reads one index range per (group, type) and joins nothing.
CREATE TABLE agent_content (
  agent_key        TEXT NOT NULL,
  type             TEXT NOT NULL,
  grp              TEXT NOT NULL,
  received_at      BIGINT NOT NULL,
  health           TEXT NOT NULL,
  version          INTEGER,                 -- NULL: nothing installed
  state            TEXT NOT NULL,           -- handler state
  crashes          INTEGER NOT NULL,
  bad              TEXT NOT NULL,           -- ",6,7,": one LIKE '%,V,%' finds a version
  rolled_back_from TEXT NOT NULL,           -- same form
  PRIMARY KEY (agent_key, type)
);
CREATE INDEX agent_content_gate ON agent_content (grp, type, received_at);

-- Releases; ord keeps the order releases were started in.
CREATE TABLE releases (
  id          TEXT PRIMARY KEY,
  ord         INTEGER NOT NULL,
  type        TEXT NOT NULL,
  version     INTEGER NOT NULL,
  status      TEXT NOT NULL,
  started_at  TEXT NOT NULL,
  finished_at TEXT,
  package     TEXT NOT NULL,                -- JSON PackageRef
  abort       TEXT                          -- JSON, NULL while not aborted
);
CREATE INDEX releases_status ON releases (status, type);

CREATE TABLE release_groups (
  release_id   TEXT NOT NULL,
  idx          INTEGER NOT NULL,
  name         TEXT NOT NULL,
  before_entry TEXT,                        -- JSON (may be 'null'); SQL NULL: not recorded yet
  published_at TEXT,
  reverted_at  TEXT,
  PRIMARY KEY (release_id, idx)
);

CREATE TABLE release_log (
  release_id TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  at         TEXT NOT NULL,
  event      TEXT NOT NULL,
  grp        TEXT,
  detail     TEXT NOT NULL,
  PRIMARY KEY (release_id, seq)
);

CREATE TABLE release_health (
  release_id TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  at         TEXT NOT NULL,
  grp        TEXT NOT NULL,
  agents     INTEGER NOT NULL,
  exposed    INTEGER NOT NULL,
  affected   INTEGER NOT NULL,
  PRIMARY KEY (release_id, seq)
);

-- Who runs the planner (SQLite; PostgreSQL uses an advisory lock instead).
CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);

-- Agent enrollments (keys, enrolled group) belong to fleet/identity and
-- arrive as their own migration (002_enrollments.sql).
