/**
 * Where things live in a state directory. Apart from config.ts (which
 * re-exports it) so that a process that only talks to a running agent — the
 * control client, `agent scan` with an agent up — does not evaluate the
 * config schemas (test/startup-imports.test.ts).
 */
import { join } from "node:path";

export const statePaths = (stateDir: string) => ({
  root: stateDir,
  content: join(stateDir, "content"),
  updateState: join(stateDir, "update-state.json"),
  indexCache: join(stateDir, "index-cache"),
  /** Package bodies while they download (core/update/spool.ts); empty between cycles. */
  updateSpool: join(stateDir, "update-spool"),
  controlToken: join(stateDir, "control.token"),
  controlInfo: join(stateDir, "control.json"),
  controlSocket: join(stateDir, "control.sock"),
  events: join(stateDir, "events.jsonl"),
  lock: join(stateDir, "agent.lock"),
  agentId: join(stateDir, "agent-id"),
});
