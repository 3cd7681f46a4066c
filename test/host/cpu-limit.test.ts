/**
 * Issue 12 item 17b: a group's CPU limit is its largest handler budget (C1),
 * capped by hosts.cpuCeilingSeconds (C2) — not the sum, which made the
 * behavior group's RLIMIT_CPU 48 h.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../core/config.ts";
import { DEFAULT_CPU_CEILING_SECONDS, withHandlerCpu } from "../../core/host/cpu-limit.ts";
import { HostManager } from "../../core/host/manager.ts";
import { log } from "../../core/log.ts";
import { defaultRegistry } from "../../handlers/index.ts";

describe("C1/C2: group CPU limit", () => {
  test("C1: the largest handler budget, never the sum", () => {
    let g = 0;
    for (const s of [600, 120, 300]) g = withHandlerCpu(g, s, 86400);
    expect(g).toBe(600);
  });

  test("C2: capped by the ceiling", () => {
    expect(withHandlerCpu(withHandlerCpu(0, 86400, 3600), 86400, 3600)).toBe(3600);
    expect(withHandlerCpu(0, 10, 3600)).toBe(10);
  });

  test("the built-in groups: behavior is no longer 48 h, and no group exceeds the ceiling", () => {
    const config = parseConfig({ stateDir: "/nonexistent-outpost-state" });
    const manager = new HostManager({
      registry: defaultRegistry(),
      log,
      config: config.hosts,
      stateDir: config.stateDir,
      emit() {},
      onContentFailure: async () => null,
    });
    const limits = new Map(manager.hosts().map((h) => [h.group, h.limits.cpuSeconds]));
    expect(limits.get("behavior")).toBe(DEFAULT_CPU_CEILING_SECONDS);
    for (const [, s] of limits) expect(s).toBeLessThanOrEqual(config.hosts.cpuCeilingSeconds);
    // A group whose handlers ask less keeps their largest budget (install, CRT: 1800 s)…
    expect(limits.get("install")).toBe(1800);
    // …and groups sharing a process (G3) share its limit: the largest budget of all its handlers
    // (hmpa alone asked 120 s; the shared process holds handlers that ask the ceiling).
    const shared = manager.hosts().filter((h) => h.process === "shared");
    expect(shared.map((h) => h.group).sort()).toEqual(["config", "esh", "hmpa", "software", "telemetry"]);
    for (const h of shared) expect(h.limits.cpuSeconds).toBe(DEFAULT_CPU_CEILING_SECONDS);
    const strict = parseConfig({ stateDir: "/nonexistent-outpost-state", hosts: { cpuCeilingSeconds: 60 } });
    const capped = new HostManager({
      registry: defaultRegistry(),
      log,
      config: strict.hosts,
      stateDir: strict.stateDir,
      emit() {},
      onContentFailure: async () => null,
    });
    expect(Math.max(...capped.hosts().map((h) => h.limits.cpuSeconds))).toBe(60);
  });
});
