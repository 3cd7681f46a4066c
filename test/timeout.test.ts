/**
 * The suite-wide default timeout (test/preload.ts) must really be in effect:
 * bun's own default is 5 s and bunfig.toml's `timeout` is ignored, which is
 * how a loaded machine used to fail dozens of tests. This test declares no
 * timeout of its own and runs past 5 s; it fails under bun's default.
 */
import { expect, test } from "bun:test";
import { DEFAULT_TEST_TIMEOUT_MS } from "./preload.ts";

test("a test without its own timeout may run longer than bun's 5 s default", async () => {
  const started = performance.now();
  await Bun.sleep(5_300);
  expect(performance.now() - started).toBeGreaterThan(5_000);
  expect(DEFAULT_TEST_TIMEOUT_MS).toBeGreaterThanOrEqual(30_000);
});
