-- Gate aggregates kept as counters (fleet/db/gate-counters.ts), so a planner
-- tick reads a few rows per (release, group) instead of every active agent.
-- A heartbeat that changes what an agent counts for moves it from its old
-- counter rows to its new ones in the same transaction; agents that go
-- stale are taken out by a sweep over the index of counted agents.

-- 1: the agent's latest heartbeat is in the counters (it was active at the
-- last sweep, or heartbeated since). Rows stored before read 0, and the
-- first sweep after the upgrade counts the active ones: the counters start
-- equal to a from-scratch aggregate.
ALTER TABLE agents ADD COLUMN counted INTEGER NOT NULL DEFAULT 0;
-- The sweep's two ranges: counted agents gone stale, and uncounted agents
-- that are active again for an earlier cut. Each row is in one of them.
CREATE INDEX agents_counted ON agents (received_at) WHERE counted = 1;
CREATE INDEX agents_uncounted ON agents (received_at) WHERE counted = 0;

-- Counted agents per group, tenant and what the gate filters them by.
-- epoch: the latest gate mark of the group at or before the agent's
-- received_at (0: none), so "reported since the group got the version"
-- (a mark) is epoch >= mark.
CREATE TABLE gate_agents (
  grp      TEXT NOT NULL,
  tenant   TEXT NOT NULL,
  vendor   INTEGER NOT NULL,
  enrolled INTEGER NOT NULL,
  pinned   TEXT NOT NULL,                    -- the agents' pinned list, as in agents.pinned
  epoch    BIGINT NOT NULL,
  n        BIGINT NOT NULL,
  PRIMARY KEY (grp, tenant, vendor, enrolled, pinned, epoch)
);
CREATE INDEX gate_agents_zero ON gate_agents (grp) WHERE n = 0;

-- Counted content rows (not pinned for their type) per group, type, and
-- each version the row mentions — the one it runs, the ones it marked bad,
-- the ones it rolled back from — with what the row says of that version:
-- flags 1 runs it, 2 marked it bad, 4 rolled back from it, and, when it
-- runs it, 8 crashes, 16 handler failed, 32 health red.
CREATE TABLE gate_content (
  grp     TEXT NOT NULL,
  type    TEXT NOT NULL,
  version INTEGER NOT NULL,
  tenant  TEXT NOT NULL,
  vendor  INTEGER NOT NULL,
  epoch   BIGINT NOT NULL,
  flags   INTEGER NOT NULL,
  n       BIGINT NOT NULL,
  PRIMARY KEY (grp, type, version, tenant, vendor, epoch, flags)
);
CREATE INDEX gate_content_zero ON gate_content (grp) WHERE n = 0;

-- The times the gate asks "reported since" for, per group (a release's
-- publish time in that group), added on first use; never removed.
CREATE TABLE gate_marks (
  grp      TEXT NOT NULL,
  since_ms BIGINT NOT NULL,
  PRIMARY KEY (grp, since_ms)
);
