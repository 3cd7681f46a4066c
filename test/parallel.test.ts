/**
 * `npm test` runs files in `bun test --parallel` workers: a worker process
 * runs several files (each in a fresh global), and the preload's afterAll, which
 * removes process-wide temp dirs, runs after each of those files. The shared
 * PKI of test/fixtures/vendor.ts must then be made again for the next file,
 * not reused from a removed directory — and must not outlive the run.
 * Four files on two workers: at least one worker runs two of them.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { bunTest, npmTestBunArgs } from "./fixtures/npm-test-args.ts";

const FIXTURES = ["a", "b", "c", "d"].map((x) => `./test/fixtures/parallel/vendor-${x}.fixture.ts`);

test("npm test's workers give every file a working shared PKI and leave none behind", async () => {
  const args = npmTestBunArgs();
  const out = await bunTest(args, FIXTURES);
  expect(out).toMatch(/^\s*4 pass$/m);
  expect(out).toMatch(/^\s*0 fail$/m);
  const runs = [...out.matchAll(/^parallel-fixture pid=(\d+) keys=(\S+)$/gm)].map((m) => ({
    pid: m[1]!,
    keys: m[2]!,
  }));
  expect(runs).toHaveLength(4);
  const filesPerPid = new Map<string, number>();
  for (const r of runs) filesPerPid.set(r.pid, (filesPerPid.get(r.pid) ?? 0) + 1);
  // The case this is about happened: one process ran more than one of the files.
  expect(Math.max(...filesPerPid.values())).toBeGreaterThanOrEqual(2);
  // Each file had its own PKI, and the preload removed every one of them.
  expect(new Set(runs.map((r) => r.keys)).size).toBe(4);
  expect(runs.filter((r) => existsSync(r.keys))).toEqual([]);
}, 60_000);
