/**
 * `agent --version` wall time against `bun -e 0` (the runtime's own start-up,
 * the floor for any Bun program), measured in the same run by spawning each
 * N times alternately. Needs dist/agent (bun build.ts).
 *
 *   bun bench/startup.ts [--runs 30] [--json]
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "30" }, json: { type: "boolean" } },
});
const RUNS = Number(values.runs);
const ROOT = join(import.meta.dir, "..");
const agent = join(ROOT, "dist/agent");
if (!existsSync(agent)) {
  console.error("bench/startup: dist/agent missing; run `bun build.ts` first");
  process.exit(2);
}

function time(cmd: string[]): number {
  const t = performance.now();
  const r = Bun.spawnSync(cmd, { stdout: "ignore", stderr: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}`);
  return performance.now() - t;
}

const ours: number[] = [];
const base: number[] = [];
// Warm the page cache for both binaries first.
time([agent, "--version"]);
time([process.execPath, "-e", "0"]);
for (let i = 0; i < RUNS; i++) {
  ours.push(time([agent, "--version"]));
  base.push(time([process.execPath, "-e", "0"]));
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const r1 = (x: number) => Math.round(x * 10) / 10;
const result = {
  runs: RUNS,
  agentVersionMs: r1(median(ours)),
  bunEmptyMs: r1(median(base)),
  ratio: Math.round((median(ours) / median(base)) * 100) / 100,
  // On a loaded machine (2 cores shared) the medians wander with the load; the fastest runs do not.
  agentVersionMinMs: r1(Math.min(...ours)),
  bunEmptyMinMs: r1(Math.min(...base)),
  ratioOfMins: Math.round((Math.min(...ours) / Math.min(...base)) * 100) / 100,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`start-up (median of ${RUNS})`);
  console.log(`  dist/agent --version  ${result.agentVersionMs} ms`);
  console.log(`  bun -e 0              ${result.bunEmptyMs} ms`);
  console.log(`  ratio                 ${result.ratio}× the bare runtime (goal ≤ 1.3×)`);
  console.log(
    `  fastest runs          ${result.agentVersionMinMs} ms vs ${result.bunEmptyMinMs} ms: ${result.ratioOfMins}×`,
  );
}
