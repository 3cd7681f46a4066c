/**
 * Runs every benchmark in sequence (`npm run bench`). Each prints its own
 * ratio against a baseline measured in the same run.
 */
import { join } from "node:path";

const benches = [
  ["startup.ts"],
  ["scan-startup.ts", "--online"],
  ["verify-install.ts", "--runs", "3"],
  // Peak memory of an update cycle installing the 120 MB AgentSoftware package (core/update/spool.ts).
  ["update-memory.ts"],
  ["hmpa.ts"],
  ["ipc.ts"],
  ["control-plane.ts"],
  ["query.ts"],
  // A scheduled-query run's outbox cost after 20 h of uptime against a fresh outbox (handlers/_shared/outbox).
  ["outbox-age.ts"],
  ["sinks.ts"],
  ["fleet/run.ts"],
  ["scan.ts"],
  ["scan-large.ts"],
  ["scan-million.ts"],
  ["reputation.ts"],
  ["lookups.ts", "--runs", "3"],
  ["sxl.ts"],
  ["behavior.ts"],
  ["policy.ts"],
  ["ips.ts", "--sizes", "100,10000,100000"],
  ["esh.ts"],
  // What a wake-up costs an idle process; the supervisor's shared ticker (core/ticker.ts).
  ["wakeups.ts"],
  // Memory and idle CPU of the whole agent with every example content type installed (issue 21, Footprint).
  ["footprint.ts", "--no-build"],
];
for (const [file, ...args] of benches) {
  console.log(`\n### bench/${file}`);
  const r = Bun.spawnSync([process.execPath, join(import.meta.dir, file!), ...args], {
    stdout: "inherit",
    stderr: "inherit",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  if (r.exitCode !== 0) console.log(`bench/${file} exited ${r.exitCode}`);
}
