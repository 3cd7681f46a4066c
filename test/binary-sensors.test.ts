/**
 * The kernel sensors read their fds on worker threads (core/sensors/reader.ts). A worker module
 * the compiled executable does not embed fails silently inside `agent run` — the sensors said
 * "started" and saw nothing — so this builds the real binary and checks that it sees a file write
 * and an exec, the way the demo and a deployment run it.
 */
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compiledAgentRun } from "./fixtures/compiled.ts";

const isRoot = process.getuid?.() === 0;
const run = compiledAgentRun("outpost-binary-sensors-");

async function until<T>(probe: () => Promise<T | undefined>, ms: number): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await Bun.sleep(100);
  }
  return probe();
}

test.skipIf(!isRoot)("the compiled agent's kernel sensors see a file write and an exec", async () => {
  const { work, agentBin: bin } = run;
  const state = join(work, "state");
  const watch = join(work, "watch");
  mkdirSync(watch);
  const config = join(work, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({
      stateDir: state,
      update: { enabled: false, trust: join(work, "none.pem") },
      sensors: { files: { paths: [watch] } },
    }),
  );
  // cwd outside the checkout: a worker path that resolved against the source tree would hide the bug.
  const agent = run.start(["run", "--config", config]);
  const status = async () => {
    const p = Bun.spawnSync([bin, "status", "--json", "--state", state]);
    if (p.exitCode !== 0) return undefined;
    return JSON.parse(p.stdout.toString()) as {
      agent: { pid: number };
      sensors?: {
        process: { sensor: string; execs: number; error?: string | null };
        files: { sensor: string; events: number; error?: string | null };
      };
    };
  };
  // Online status (answered by the running agent, with its sensors section).
  expect(
    await until(async () => ((await status())?.agent.pid === agent.pid ? true : undefined), 30_000),
  ).toBe(true);
  const seen = await until(async () => {
    writeFileSync(join(watch, "f"), `write ${Date.now()}\n`);
    Bun.spawnSync(["/bin/true"]);
    const s = (await status())?.sensors;
    return s && s.files.events > 0 && s.process.execs > 0 ? s : undefined;
  }, 20_000);
  expect(seen?.process).toMatchObject({ sensor: "netlink" });
  expect(seen?.files).toMatchObject({ sensor: "fanotify" });
  expect(seen?.process.error ?? null).toBeNull();
});
