/**
 * Nothing orphaned: a query worker dies with its parent even while SQLite
 * spins in C code (PR_SET_PDEATHSIG), leads its own process group, and
 * Ctrl-C stops `agent query` and its worker at once.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
const ROOT = join(import.meta.dir, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "outpost-lifeline-"));
const spawned: number[] = [];
afterAll(() => {
  // Belt and braces: never leave a spinning worker behind, even when an assertion failed.
  for (const pid of spawned) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await Bun.sleep(20);
  }
  return cond();
}

/** Children of `ppid` whose command line contains `needle`. */
function childrenOf(ppid: number, needle: string): number[] {
  const out: number[] = [];
  for (const n of require("node:fs").readdirSync("/proc") as string[]) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== ppid) continue;
      if (readFileSync(`/proc/${n}/cmdline`, "utf8").includes(needle)) out.push(Number(n));
    } catch {}
  }
  return out;
}

describe("query workers are never orphaned", () => {
  test(
    "PR_SET_PDEATHSIG is armed with SIGKILL",
    () => {
      const r = Bun.spawnSync(
        [
          process.execPath,
          "-e",
          `const l = await import(${JSON.stringify(join(import.meta.dir, "lifeline.ts"))}); l.dieWithParent(); console.log(l.parentDeathSignal());`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      expect(r.stdout.toString().trim()).toBe("9");
    },
    { timeout: 15_000 },
  );

  test(
    "when the query host is SIGKILLed mid-query, its spinning worker dies too; the worker leads its own process group",
    async () => {
      const script = join(dir, "parent.ts");
      writeFileSync(
        script,
        `const { QueryRunner } = await import(${JSON.stringify(join(import.meta.dir, "watchdog.ts"))});
const r = new QueryRunner({ onQuerySent: (pid) => console.log("worker " + pid) });
await r.run(${JSON.stringify(SPIN)}, { memoryMb: 4000, cpuPercent: 100, latencySeconds: 3600, wallSeconds: 3600 });`,
      );
      const parent = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
      spawned.push(parent.pid);
      const reader = (parent.stdout as ReadableStream<Uint8Array>).getReader();
      let text = "";
      while (!/worker (\d+)/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      const worker = Number(/worker (\d+)/.exec(text)?.[1]);
      spawned.push(worker);
      expect(alive(worker)).toBe(true);
      const stat = readFileSync(`/proc/${worker}/stat`, "utf8");
      expect(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2])).toBe(worker);

      parent.kill("SIGKILL");
      await parent.exited;
      expect(await until(() => !alive(worker), 5000)).toBe(true);
    },
    { timeout: 30_000 },
  );

  test(
    "Ctrl-C stops `agent query` running a spinning query locally, and its worker, within a second or two",
    async () => {
      const state = join(dir, "state");
      const cli = Bun.spawn(
        [process.execPath, join(ROOT, "bin", "agent.ts"), "query", SPIN, "--state", state],
        {
          stdout: "pipe",
          stderr: "pipe",
          cwd: ROOT,
        },
      );
      spawned.push(cli.pid);
      const found = () => childrenOf(cli.pid, "worker");
      expect(await until(() => found().length > 0, 20_000)).toBe(true);
      const workers = found();
      spawned.push(...workers);
      // Signal once the query is spinning (the worker's CPU time grows), not while the CLI starts up.
      const cpu = (pid: number) => {
        try {
          const f = readFileSync(`/proc/${pid}/stat`, "utf8");
          return Number(f.slice(f.lastIndexOf(")") + 2).split(" ")[11]);
        } catch {
          return 0;
        }
      };
      expect(await until(() => cpu(workers[0]!) >= 20, 20_000)).toBe(true);
      const t0 = performance.now();
      cli.kill("SIGINT");
      const code = await cli.exited;
      const ms = performance.now() - t0;
      expect(code).toBe(130);
      expect(ms).toBeLessThan(3000);
      expect(await until(() => workers.every((w) => !alive(w)), 5000)).toBe(true);
      // An offline inquiry opens the state dir read-only: it created nothing there (issue 12 item 15).
      expect(existsSync(state)).toBe(false);
    },
    { timeout: 40_000 },
  );

  test(
    "Ctrl-C while the worker is still starting also stops both at once",
    async () => {
      const cli = Bun.spawn(
        [process.execPath, join(ROOT, "bin", "agent.ts"), "query", SPIN, "--state", join(dir, "state2")],
        { stdout: "pipe", stderr: "pipe", cwd: ROOT },
      );
      spawned.push(cli.pid);
      expect(await until(() => childrenOf(cli.pid, "worker").length > 0, 20_000)).toBe(true);
      const workers = childrenOf(cli.pid, "worker");
      spawned.push(...workers);
      const t0 = performance.now();
      cli.kill("SIGINT");
      expect(await cli.exited).toBe(130);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(await until(() => workers.every((w) => !alive(w)), 5000)).toBe(true);
    },
    { timeout: 40_000 },
  );
});
