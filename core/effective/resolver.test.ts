/**
 * The resolver and the allow-list (E1–E3): pure checks, one test per rule
 * and per attack. The host process that computed an overlay is not trusted,
 * so everything RemapperRules validation refuses is refused here again.
 */
import { expect, test } from "bun:test";
import { checkPolicyKey } from "./allow-list.ts";
import { type Overlay, resolveEffective } from "./resolver.ts";

const base = {
  input: { stateDir: "/var/lib/x", liveProtection: { attempts: 4 } },
  file: "/etc/outpost/agent.json",
};
const overlay = (file: string, values: [string, unknown][], rule = "r"): Overlay => ({
  file,
  values: values.map(([key, value]) => ({ key, value, rule, document: "tp.xml", line: 3 })),
});

test("origins: default, agent.json, or the rule file, rule and document line that set the value", () => {
  const r = resolveEffective(base, [
    { file: "lp.json", next: overlay("lp.json", [["liveProtection.lookups", true]]) },
  ]);
  expect(r.config.liveProtection.lookups).toBe(true);
  expect(r.origins["liveProtection.lookups"]).toEqual({
    source: "policy",
    file: "lp.json",
    rule: "r",
    document: "tp.xml",
    line: 3,
  });
  expect(r.origins["liveProtection.attempts"]).toEqual({
    source: "agent.json",
    file: "/etc/outpost/agent.json",
  });
  expect(r.origins["liveProtection.timeoutMs"]).toEqual({ source: "default" });
  expect(r.used).toEqual({ "lp.json": "next" });
});

test("E1: a forbidden key returned by a host is refused here; the file's previous values stay", () => {
  const previous = overlay("x.json", [["liveProtection.lookups", true]]);
  for (const key of [
    "update.trust",
    "update.repo",
    "control.allowRemote",
    "hosts.isolation",
    "stateDir",
    "fleet.url",
  ]) {
    const r = resolveEffective(base, [
      {
        file: "x.json",
        next: overlay("x.json", [
          ["liveProtection.timeoutMs", 99],
          [key, "evil"],
        ]),
        previous,
      },
    ]);
    expect(r.refusals).toMatchObject([{ file: "x.json", code: "POL_FORBIDDEN_KEY", key }]);
    expect(r.used["x.json"]).toBe("previous");
    expect(r.config.liveProtection.lookups).toBe(true);
    expect(r.config.liveProtection.timeoutMs).toBe(1000); // nothing from the refused output
    expect(JSON.stringify(r.config.update)).not.toContain("evil");
  }
});

test("E2/E3: keys off the allow-list and malformed keys are refused", () => {
  expect(checkPolicyKey("liveProtection.sampleUrl")).toMatchObject({ ok: false, code: "POL_FORBIDDEN_KEY" });
  expect(checkPolicyKey("query.results.http.url")).toMatchObject({ ok: false, code: "POL_FORBIDDEN_KEY" });
  expect(checkPolicyKey("reputationX.y")).toMatchObject({ ok: false, code: "POL_KEY_NOT_ALLOWED" });
  expect(checkPolicyKey("__proto__.polluted")).toMatchObject({ ok: false, code: "POL_BAD_KEY" });
  expect(checkPolicyKey("onAccess.mode")).toEqual({ ok: true });
  expect(checkPolicyKey("ips.enabled")).toEqual({ ok: true });
  expect(checkPolicyKey("ips.selfDisable.overruns")).toMatchObject({
    ok: false,
    code: "POL_KEY_NOT_ALLOWED",
  });
  expect(checkPolicyKey("telemetry.url")).toMatchObject({ ok: false, code: "POL_KEY_NOT_ALLOWED" });
  expect(checkPolicyKey("query.watchdog.memoryMb")).toEqual({ ok: true });
});

test("per-file atomicity: a value the schema refuses drops the whole file's output, other files unaffected", () => {
  const r = resolveEffective(base, [
    { file: "a.json", next: overlay("a.json", [["liveProtection.lookups", true]]) },
    {
      file: "b.json",
      next: overlay("b.json", [
        ["reputation.processTagging", false],
        ["reputation.pollIntervalMs", 5],
      ]),
      previous: overlay("b.json", [["reputation.pollIntervalMs", 500]]),
    },
  ]);
  expect(r.config.liveProtection.lookups).toBe(true);
  expect(r.config.reputation).toEqual({ processTagging: true, pollIntervalMs: 500 });
  expect(r.refusals).toMatchObject([
    { file: "b.json", code: "POL_VALUE_REFUSED", key: "reputation.pollIntervalMs" },
  ]);
  expect(r.used).toEqual({ "a.json": "next", "b.json": "previous" });
});

test("cross-file constraints: a file whose values break the config with another file's is refused whole", () => {
  // samples need lookups, a URL and a key: a file that turns samples on alone cannot apply.
  const r = resolveEffective(base, [
    { file: "s.json", next: overlay("s.json", [["liveProtection.samples", true]]) },
  ]);
  expect(r.used["s.json"]).toBe("none");
  expect(r.config.liveProtection.samples).toBe(false);
  expect(r.refusals[0]?.code).toBe("POL_VALUE_REFUSED");
});

test("two files setting one key: the later file (by name) wins and the origin says so", () => {
  const r = resolveEffective(base, [
    { file: "z.json", next: overlay("z.json", [["liveProtection.timeoutMs", 300]], "late") },
    { file: "a.json", next: overlay("a.json", [["liveProtection.timeoutMs", 200]], "early") },
  ]);
  expect(r.config.liveProtection.timeoutMs).toBe(300);
  expect(r.origins["liveProtection.timeoutMs"]).toMatchObject({ file: "z.json", rule: "late" });
});

test("a duplicate target inside one overlay is refused", () => {
  const r = resolveEffective(base, [
    {
      file: "d.json",
      next: overlay("d.json", [
        ["liveProtection.timeoutMs", 300],
        ["liveProtection.timeoutMs", 400],
      ]),
    },
  ]);
  expect(r.refusals[0]?.code).toBe("POL_DUPLICATE_TARGET");
  expect(r.config.liveProtection.timeoutMs).toBe(1000);
});

test("config show never prints credentials", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { parseConfig } = await import("../config.ts");
  const { HealthBoard } = await import("../health/reasons.ts");
  const { log } = await import("../log.ts");
  const { snapshotFromDisk } = await import("./service.ts");
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-effective-"));
  try {
    const config = parseConfig({ stateDir, fleet: { token: "s3cr3t-fleet-token-0123456789" } });
    const snap = snapshotFromDisk(config, log, new HealthBoard());
    expect(snap.values.find((v) => v.key === "fleet.token")?.value).toBe("(redacted)");
    expect(JSON.stringify(snap)).not.toContain("s3cr3t");
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test("IPS enablement can come from policy; its safety limits cannot", () => {
  const r = resolveEffective(base, [
    {
      file: "ips.json",
      next: overlay("ips.json", [
        ["ips.enabled", true],
        ["ips.mode", "prevent"],
      ]),
    },
    { file: "limits.json", next: overlay("limits.json", [["ips.selfDisable.overruns", 1000000]]) },
  ]);
  expect([r.config.ips.enabled, r.config.ips.mode]).toEqual([true, "prevent"]);
  expect(r.refusals).toMatchObject([{ file: "limits.json", code: "POL_KEY_NOT_ALLOWED" }]);
});
