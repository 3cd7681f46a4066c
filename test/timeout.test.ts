/**
 * The suite's 30 s timeout must really be in effect for every file. bun
 * ignores bunfig.toml's `[test] timeout`, and `setDefaultTimeout` in a
 * preload only reaches the first test file of a run, so under load tests
 * failed at bun's 5 s default. The test script passes `--timeout` instead;
 * this runs two files that each need more than 5 s with exactly the bun
 * test arguments of `npm test`, and, as a control, without them.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const FIXTURES = ["./test/fixtures/timeout/slow-a.fixture.ts", "./test/fixtures/timeout/slow-b.fixture.ts"];

/** The arguments `npm test` gives `bun test` (everything after "bun test" in scripts.test). */
function npmTestBunArgs(): string[] {
  const script: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.test;
  const m = /(?:^|&&\s*)bun test((?:\s+--?[\w-]+(?:[= ]\d+)?)*)\s*$/.exec(script);
  if (!m) throw new Error(`package.json scripts.test does not end in "bun test …": ${script}`);
  return m[1]!.trim().split(/\s+/).filter(Boolean);
}

async function bunTest(args: string[]): Promise<string> {
  const proc = Bun.spawn([process.execPath, "test", ...args, ...FIXTURES], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  return out + err;
}

test("npm test's bun arguments give every file more than bun's 5 s default", async () => {
  const args = npmTestBunArgs();
  expect(args).toContain("--timeout");
  const [configured, bare] = await Promise.all([bunTest(args), bunTest([])]);
  expect(configured).toMatch(/^\s*2 pass$/m);
  expect(configured).toMatch(/^\s*0 fail$/m);
  // Control: without them the same files time out, so the fixtures do test the timeout.
  expect(bare).toContain("timed out after 5000ms");
}, 60_000);
