-- What the forge-proof health gate (fleet/gate.ts, G1–G4) needs of each
-- agent's latest heartbeat: who sent it (an enrolled key; a vendor tenant)
-- and what it holds back on purpose (its policy's cadence and pins).
-- Added columns with defaults, so rows stored before read as unenrolled,
-- customer, unpinned — the most cautious reading.

ALTER TABLE agents ADD COLUMN enrolled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN vendor INTEGER NOT NULL DEFAULT 0;
-- The heartbeat policy's cadence (NULL: none reported).
ALTER TABLE agents ADD COLUMN cadence TEXT;
-- Types held back (G2): ",*," for cadence pinned-n-1, else ",T1,T2,"; '' none.
ALTER TABLE agents ADD COLUMN pinned TEXT NOT NULL DEFAULT '';

-- Copied onto each content row, like grp and health, so the per-tenant gate
-- aggregate still reads one index range per (group, type) and joins nothing.
ALTER TABLE agent_content ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_content ADD COLUMN vendor INTEGER NOT NULL DEFAULT 0;
-- 1: this agent holds this type back (G2), so it is neither active nor exposed for it.
ALTER TABLE agent_content ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;

-- The ML models a release carries and their modes (JSON; NULL: none), for
-- the live-model gate (fleet/live-gate.ts, T3). Release status may now also
-- be 'closed' (`release close`); the status column is free text already.
ALTER TABLE releases ADD COLUMN models TEXT;
