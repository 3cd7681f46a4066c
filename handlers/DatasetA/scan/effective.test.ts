import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentConfig, parseConfig } from "../../../core/config.ts";
import { HealthBoard } from "../../../core/health/reasons.ts";
import { effectiveScanningService } from "./effective.ts";
import { scanRuntimeOf } from "./runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-scan-effective-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

/** An effective-config source whose current() the test replaces, notifying every subscriber. */
function fakeEffective(initial: AgentConfig) {
  let config = initial;
  const subs = new Map<string, () => void>();
  return {
    current: () => config,
    subscribe: (p: string[], fn: () => void) => {
      subs.set(p.join(","), fn);
      return () => subs.delete(p.join(","));
    },
    patterns: () => [...subs.keys()],
    set(next: AgentConfig) {
      config = next;
      for (const fn of subs.values()) fn();
    },
  };
}

test("a policy change to the keys scanning uses rebuilds it with the new values; a bad one keeps the old", async () => {
  const effective = fakeEffective(parseConfig({ stateDir: dir, reputation: { processTagging: false } }));
  const health = new HealthBoard();
  const events: { type: string; fields?: Record<string, unknown> }[] = [];
  const api = { call: async () => ({}), health };
  const currentScanRuntime = () => scanRuntimeOf(api);
  const svc = effectiveScanningService(
    {
      config: effective.current(),
      api,
      events: { emit: (type: string, fields?: Record<string, unknown>) => events.push({ type, fields }) },
    },
    effective,
  );
  await svc.start();
  expect(effective.patterns().sort()).toEqual(["liveProtection.*,reputation.*", "ml.*"]);
  expect(currentScanRuntime()?.sxl).toBeUndefined();

  // Tenant policy turns Live Protection lookups on.
  effective.set(
    parseConfig({
      stateDir: dir,
      reputation: { processTagging: false },
      liveProtection: { lookups: true, resolver: "127.0.0.1:5353" },
    }),
  );
  await svc.settled();
  expect(currentScanRuntime()?.sxl).toBeDefined();
  expect(events.find((e) => e.type === "config-applied")?.fields).toEqual({
    service: "scanning",
    keys: ["liveProtection.lookups", "liveProtection.resolver"],
  });

  // Settings that cannot start (the vendor key file is missing): the previous ones run again.
  const good = effective.current();
  effective.set({
    ...good,
    liveProtection: {
      ...good.liveProtection,
      samples: true,
      sampleUrl: "http://127.0.0.1:1/v1/samples",
      vendorKey: join(dir, "missing.pem"),
    },
  });
  await svc.settled();
  expect(currentScanRuntime()?.sxl).toBeDefined();
  expect(currentScanRuntime()?.queue).toBeUndefined();
  const reason = health.list().find((r) => r.source === "config:scanning");
  expect(reason).toMatchObject({ level: "amber", code: "POL_NOT_APPLIED" });
  expect(reason?.message).toContain("the previous settings stay in force");
  expect(events.at(-1)).toMatchObject({
    type: "config-apply-failed",
    fields: { service: "scanning", restored: true },
  });

  // ML mode follows without a rebuild: the scan requester reads it at the next object.
  const runtimeBefore = currentScanRuntime();
  effective.set({ ...good, ml: { mode: "telemetry" } });
  await svc.settled();
  expect(svc.mlMode()).toBe("telemetry");
  expect(currentScanRuntime()).toBe(runtimeBefore!);
  // Back to the good scanning settings: the failure clears.
  expect(health.list().some((r) => r.source === "config:scanning")).toBe(false);

  await svc.stop();
  expect(effective.patterns()).toEqual([]);
  expect(currentScanRuntime()).toBeUndefined();
});
