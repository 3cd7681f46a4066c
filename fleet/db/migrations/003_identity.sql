-- Fleet identity in the database (fleet/identity/db-store.ts), so every
-- replica knows every enrollment, refuses every replay and writes one audit
-- trail. Earlier versions kept these in files under the state dir; they are
-- imported once, when these tables are empty.

-- One row per enrolled agent; never rewritten (an enrolled id cannot be taken over, E4).
CREATE TABLE enrollments (
  tenant      TEXT NOT NULL,
  agent_id    TEXT NOT NULL,
  grp         TEXT NOT NULL,                -- assigned from the tenant's config, never from a heartbeat
  alg         TEXT NOT NULL,
  public_key  TEXT NOT NULL,
  vendor      INTEGER NOT NULL,
  enrolled_at TEXT NOT NULL,
  enrolled_ms BIGINT NOT NULL,              -- enrolled_at in ms, for the per-hour limit (E3)
  PRIMARY KEY (tenant, agent_id)
);
CREATE INDEX enrollments_tenant ON enrollments (tenant, enrolled_ms);

-- The last heartbeat sequence number per agent (replay protection, I4).
CREATE TABLE agent_seq (
  agent_key TEXT PRIMARY KEY,               -- tenant/agentId
  seq       BIGINT NOT NULL
);

-- Every promote, force, abort, close and stalled report (O4), oldest first by ord.
CREATE TABLE audit (
  ord        BIGINT PRIMARY KEY,
  at         TEXT NOT NULL,
  actor      TEXT NOT NULL,
  kind       TEXT NOT NULL,               -- start | promote | force-promote | abort | close | stalled
  release_id TEXT NOT NULL,
  grp        TEXT,
  reason     TEXT NOT NULL
);
