-- Telemetry reports (fleet/telemetry/store.ts) in the fleet database, so every replica on the same
-- database shows the same console telemetry view and the ML live gate (fleet/live-gate.ts) counts
-- every report, whichever replica received it. Earlier versions kept these tables in
-- STATE/telemetry.sqlite per server; that file is not imported (docs/telemetry.md "Storage").

-- One row per report, keyed by `<generation>:<seq>` from the upload's Idempotency-Key: a report sent
-- again (a retry, or the same upload reaching two replicas) is stored once (ON CONFLICT DO NOTHING).
CREATE TABLE telemetry_reports (
  key          TEXT PRIMARY KEY,
  tenant       TEXT NOT NULL,
  agent_id     TEXT NOT NULL,
  report_id    TEXT NOT NULL,
  received_at  TEXT NOT NULL,             -- ISO 8601 UTC; retention prunes on it
  period_end   TEXT NOT NULL,             -- ISO 8601 UTC; an agent's latest report has the greatest
  body         TEXT NOT NULL              -- the report as received (zod-checked), JSON
);
CREATE INDEX telemetry_reports_agent ON telemetry_reports (agent_id, period_end);
CREATE INDEX telemetry_reports_received ON telemetry_reports (received_at);

-- One row per rule per report, for the console's rule runtime view.
CREATE TABLE telemetry_rule_runtime (
  key       TEXT NOT NULL,                -- telemetry_reports.key (deleted with it by the store)
  agent_id  TEXT NOT NULL,
  rule      TEXT NOT NULL,
  calls     DOUBLE PRECISION NOT NULL,
  time_ms   DOUBLE PRECISION NOT NULL,
  max_ms    DOUBLE PRECISION NOT NULL,
  faults    DOUBLE PRECISION NOT NULL
);
CREATE INDEX telemetry_rule_runtime_key ON telemetry_rule_runtime (key);
