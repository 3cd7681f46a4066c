/**
 * Feature gates (docs/policy.md, "Feature gates"): a flag that is off turns
 * the gated value into the feature's safe one, in the effective config
 * itself — so every following service sees it — and only once a Flags
 * supplement has been accepted on the host.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAgentConfig, parseConfig } from "../config.ts";
import { HealthBoard } from "../health/reasons.ts";
import { log } from "../log.ts";
import { applyGates, FEATURE_GATES } from "./gates.ts";
import { resolveEffective } from "./resolver.ts";
import { EffectiveConfigService } from "./service.ts";

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-gates-"));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

const wantsEverything = () => ({
  input: {
    stateDir,
    onAccess: { enabled: true, mode: "block" },
    ips: { enabled: true },
    ml: { mode: "live" },
  },
  file: "/etc/outpost/agent.json",
});

test("flag off → safe value with a flag origin; flag on or gates not in force → the wanted value", () => {
  const r = resolveEffective(wantsEverything(), []);
  const off = applyGates(r, true, () => false);
  expect([
    off.resolution.config.onAccess.mode,
    off.resolution.config.ml.mode,
    off.resolution.config.ips.enabled,
  ]).toEqual(["detect", "telemetry", false]);
  expect(off.resolution.values["onAccess.mode"]).toBe("detect");
  expect(off.resolution.origins["onAccess.mode"]).toEqual({
    source: "flag",
    flag: "onAccessBlock",
    wanted: "block",
    wantedOrigin: { source: "agent.json", file: "/etc/outpost/agent.json" },
  });
  expect(off.rows.map((g) => [g.flag, g.state])).toEqual([
    ["onAccessBlock", "withheld"],
    ["mlLive", "withheld"],
    ["ips", "withheld"],
  ]);
  // Only ipsOn: the other two stay withheld; the input resolution is not mutated.
  const some = applyGates(r, true, (f) => f === "ips");
  expect(some.resolution.config.ips.enabled).toBe(true);
  expect(some.resolution.config.onAccess.mode).toBe("detect");
  expect(r.config.onAccess.mode).toBe("block");
  // No supplement ever accepted: nothing is gated.
  const ungated = applyGates(r, false, () => false);
  expect(ungated.resolution).toBe(r);
  expect(ungated.rows.every((g) => g.state === "ungated" && !g.withheld)).toBe(true);
  // A feature nobody asked for is not "withheld": detect stays detect.
  const plain = applyGates(resolveEffective({ input: { stateDir } }, []), true, () => false);
  expect(plain.rows.find((g) => g.flag === "onAccessBlock")).toMatchObject({
    state: "not-requested",
    withheld: false,
  });
  expect(FEATURE_GATES.map((g) => g.flag)).toEqual(["onAccessBlock", "mlLive", "ips"]);
});

test("a gate parses again only the sections it changes: the same config as the whole schema's parse", () => {
  const r = resolveEffective(wantsEverything(), []);
  const off = applyGates(r, true, (f) => f === "ips");
  const whole = structuredClone(r.config) as unknown as Record<string, Record<string, unknown>>;
  whole.onAccess!.mode = "detect";
  whole.ml!.mode = "telemetry";
  expect(off.resolution.config).toEqual(parseAgentConfig(whole));
  // Untouched sections are the parsed ones as they were; the changed ones are new objects.
  expect(off.resolution.config.ips).toBe(r.config.ips);
  expect(off.resolution.config.update).toBe(r.config.update);
  expect(off.resolution.config.onAccess).not.toBe(r.config.onAccess);
  expect(r.config.ml.mode).toBe("live");
});

test("the service: a supplement arriving puts gates in force; subscribers hear the gated key change", async () => {
  let supplement: Record<string, string> | null = null;
  const events: { type: string; fields?: Record<string, unknown> }[] = [];
  const svc = new EffectiveConfigService({
    config: parseConfig(wantsEverything().input),
    call: async (_type, method) => (method === "supplement" ? { version: 1, flags: supplement } : null),
    contributors: (role) => (role === "config.flags" && supplement ? ["Flags"] : []),
    emit: (type, fields) => events.push({ type, fields }),
    health: new HealthBoard(),
    log,
    now: () => new Date("2026-12-03T12:00:00Z"),
  });
  const heard: string[][] = [];
  svc.subscribe(["onAccess.*", "ips.enabled"], (changes) => heard.push(changes.map((c) => c.key)));
  await svc.apply();
  expect(svc.current().onAccess.mode).toBe("block");
  expect(svc.gates().every((g) => g.state === "ungated")).toBe(true);

  supplement = { onAccessBlock: "available", mlLive: "available", ips: "off" };
  await svc.apply();
  // Available, but the service never said on (F4 → off): every gated feature falls back.
  expect(svc.current().onAccess.mode).toBe("detect");
  expect(svc.current().ips.enabled).toBe(false);
  expect(heard).toEqual([["ips.enabled", "onAccess.mode"]]);
  expect(events.find((e) => e.type === "config-changed")?.fields).toEqual({
    keys: ["ips.enabled", "ml.mode", "onAccess.mode"],
  });
  expect(svc.status().gates.find((g) => g.flag === "ips")).toMatchObject({
    wanted: true,
    value: false,
    state: "withheld",
  });
  const snap = svc.snapshot();
  expect(snap.values.find((v) => v.key === "onAccess.mode")?.origin).toMatchObject({
    source: "flag",
    flag: "onAccessBlock",
  });

  // The Flags content goes away: the last supplement is remembered, the gates stay.
  supplement = null;
  await svc.apply();
  expect(svc.current().onAccess.mode).toBe("detect");
});
