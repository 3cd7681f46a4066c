/**
 * The suite's 30 s timeout must really be in effect for every file. bun
 * ignores bunfig.toml's `[test] timeout`, and `setDefaultTimeout` in a
 * preload only reaches the first test file of a run, so under load tests
 * failed at bun's 5 s default. The test script passes `--timeout` instead;
 * this runs two files that each need more than 5 s with exactly the bun
 * test arguments of `npm test` (so through its `--parallel` workers, which
 * must receive the timeout), and, as a control, with the same arguments
 * less `--timeout`.
 */
import { expect, test } from "bun:test";
import { bunTest, npmTestBunArgs, withoutTimeout } from "./fixtures/npm-test-args.ts";

const FIXTURES = ["./test/fixtures/timeout/slow-a.fixture.ts", "./test/fixtures/timeout/slow-b.fixture.ts"];

test("npm test's bun arguments give every file more than bun's 5 s default", async () => {
  const args = npmTestBunArgs();
  const control = withoutTimeout(args);
  expect(control, `no --timeout in ${args.join(" ")}`).toBeDefined();
  const [configured, bare] = await Promise.all([bunTest(args, FIXTURES), bunTest(control!, FIXTURES)]);
  expect(configured).toMatch(/^\s*2 pass$/m);
  expect(configured).toMatch(/^\s*0 fail$/m);
  // Control: without --timeout the same files time out, so the fixtures do test the timeout.
  expect(bare).toContain("timed out after 5000ms");
  expect(bare).toMatch(/^\s*2 fail$/m);
}, 60_000);
