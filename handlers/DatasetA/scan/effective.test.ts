import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentConfig, parseConfig } from "../../../core/config.ts";
import { effectiveScanningService } from "./effective.ts";
import { scanRuntimeOf } from "./runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-scan-effective-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

test("a policy change to the keys scanning uses rebuilds it with the new values; a bad one keeps the old", async () => {
  let config: AgentConfig = parseConfig({ stateDir: dir, reputation: { processTagging: false } });
  let notify: (() => void) | undefined;
  const patterns: string[][] = [];
  const effective = {
    current: () => config,
    subscribe: (p: string[], fn: () => void) => {
      patterns.push(p);
      notify = fn;
      return () => {
        notify = undefined;
      };
    },
  };
  const api = { call: async () => ({}) };
  const currentScanRuntime = () => scanRuntimeOf(api);
  const svc = effectiveScanningService({ config, api }, effective);
  await svc.start();
  expect(patterns).toEqual([["liveProtection.*", "reputation.*"]]);
  expect(currentScanRuntime()?.sxl).toBeUndefined();

  // Tenant policy turns Live Protection lookups on.
  config = parseConfig({
    stateDir: dir,
    reputation: { processTagging: false },
    liveProtection: { lookups: true, resolver: "127.0.0.1:5353" },
  });
  notify?.();
  await svc.settled();
  expect(currentScanRuntime()?.sxl).toBeDefined();

  // Settings that cannot start (the vendor key file is missing): the previous ones run again.
  config = {
    ...config,
    liveProtection: {
      ...config.liveProtection,
      samples: true,
      sampleUrl: "http://127.0.0.1:1/v1/samples",
      vendorKey: join(dir, "missing.pem"),
    },
  };
  notify?.();
  await svc.settled();
  expect(currentScanRuntime()?.sxl).toBeDefined();
  expect(currentScanRuntime()?.queue).toBeUndefined();

  await svc.stop();
  expect(notify).toBeUndefined();
  expect(currentScanRuntime()).toBeUndefined();
});
