/**
 * The real thing: a child process installs v2 over v1 and is SIGKILLed at
 * durable steps (OUTPOST_CRASH_POINT). After each death a fresh store must
 * open to exactly v1 or v2 with every file intact. Every step is covered
 * in-process by store.test.ts; here a sample (the first, the last, each
 * side of the commit point and every fifth) keeps the suite fast while
 * proving the env hook and real process death behave the same.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContentStore } from "./store.ts";
import { makePackage, makeSigner, TEST_NOW, type TestSigner } from "./testkit.ts";

const TYPE = "Demo_data";
const CHILD = join(import.meta.dir, "testdata", "crash-child.ts");
const BUN = process.execPath;
let base: string;
let signer: TestSigner;
let v2File: string;
let seed: string;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "outpost-crash-"));
  signer = await makeSigner(base);
  const v1 = await makePackage(signer, TYPE, 1, { "a.txt": "v1 a\n", "deep/b.txt": "v1 b\n" });
  const v2 = await makePackage(signer, TYPE, 2, { "a.txt": "v2 a\n", "deep/er/c.txt": "v2 c\n" });
  v2File = join(base, "v2.tar");
  writeFileSync(v2File, v2.bytes);
  seed = join(base, "seed");
  const store = new ContentStore(seed, { now: () => TEST_NOW });
  store.open();
  store.activate(store.stage(v1.pkg, v1.sha384));
}, 60_000);

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

async function runChild(
  state: string,
  env: Record<string, string>,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const proc = Bun.spawn([BUN, CHILD, state, v2File, signer.rootPem, TEST_NOW.toISOString()], {
    env: { ...process.env, OUTPOST_LOG_QUIET: "1", ...env },
    stdout: "ignore",
    stderr: "pipe",
  });
  const stderr = await new Response(proc.stderr).text();
  await proc.exited;
  return { code: proc.exitCode, signal: proc.signalCode === null ? null : String(proc.signalCode), stderr };
}

function freshState(name: string): string {
  const state = join(base, name);
  cpSync(seed, state, { recursive: true });
  return state;
}

test("SIGKILL during an upgrade leaves v1 before the commit point and v2 from it on, whole", async () => {
  const traced = await runChild(freshState("trace"), { OUTPOST_CRASH_TRACE: "1" });
  expect(traced.code).toBe(0);
  const points = traced.stderr.split("\n").filter((l) => l.startsWith("crashpoint "));
  expect(points.length).toBeGreaterThan(20);
  const commit = points.findIndex((l) => l.endsWith("-> current.json")) + 1;
  expect(commit).toBeGreaterThan(1);

  const sample = [...new Set([1, commit - 1, commit, commit + 1, points.length])].filter(
    (n) => n <= points.length,
  );
  for (let n = 5; n < points.length; n += 5) if (!sample.includes(n)) sample.push(n);
  const queue = [...sample];
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      const state = freshState(`crash-${n}`);
      const run = await runChild(state, { OUTPOST_CRASH_POINT: String(n) });
      expect(run.signal).toBe("SIGKILL");
      expect(run.stderr).toContain(`crashpoint ${n} `);
      const store = new ContentStore(state);
      store.open();
      const report = store.verifyInstalled(TYPE);
      expect({ n, version: report?.version, ok: report?.ok }).toEqual({
        n,
        version: n < commit ? 1 : 2,
        ok: true,
      });
      expect(readdirSync(join(state, "content", TYPE, "staging"))).toEqual([]);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}, 60_000);
