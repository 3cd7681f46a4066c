-- Exclusion reports (fleet/exclusions/store.ts) in the fleet database, so every replica on the same
-- database knows which list each agent's fleet copy holds and asks an agent for its list once, not
-- once per replica. Earlier versions kept this table in STATE/exclusions.sqlite per server; it is not
-- imported: a list the fleet does not hold is asked for again at the agent's next heartbeat.

-- One row per agent: the latest summary its heartbeat announced, and the full list held (if any).
CREATE TABLE agent_exclusions (
  tenant      TEXT NOT NULL,
  agent_id    TEXT NOT NULL,
  excl_count  INTEGER NOT NULL,
  hash        TEXT NOT NULL,              -- SHA-256 of the agent's effective list (canonical order)
  by_source   TEXT NOT NULL,              -- JSON: { APPFEED: n, USERAPPFEED: n, config: n }
  summary_at  TEXT NOT NULL,              -- when this summary (hash) was first announced
  list_hash   TEXT,                       -- hash of the list held; NULL: none received yet
  list_json   TEXT,                       -- the list (≤ 32 MiB, zod-checked and hash-checked on receipt)
  list_at     TEXT,
  PRIMARY KEY (tenant, agent_id)
);
CREATE INDEX agent_exclusions_agent ON agent_exclusions (agent_id);
