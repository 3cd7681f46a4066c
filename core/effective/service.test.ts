/**
 * The service around the resolver: what it persists survives a restart
 * (including refusals), a file the handler stops shipping takes its values
 * with it, and a host that returns garbage changes nothing.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config.ts";
import { HealthBoard } from "../health/reasons.ts";
import { log } from "../log.ts";
import { EffectiveConfigService } from "./service.ts";

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-effective-svc-"));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

const value = (key: string, v: unknown) => ({ key, value: v, rule: "r", document: "tp.xml" });

function service(remap: () => unknown) {
  const events: { type: string; fields?: Record<string, unknown> }[] = [];
  const health = new HealthBoard();
  const svc = new EffectiveConfigService({
    config: parseConfig({ stateDir }),
    call: async () => remap(),
    contributors: (role) => (role === "config.overlays" ? ["RemapperRules"] : []),
    emit: (type, fields) => events.push({ type, fields }),
    health,
    log,
    now: () => new Date("2026-12-03T12:00:00Z"),
  });
  return { svc, events, health };
}

test("accepted overlays and refusals persist across a restart; a dropped rule file takes its values", async () => {
  let files: unknown[] = [
    { file: "a.json", ok: true, values: [value("liveProtection.timeoutMs", 300)] },
    { file: "b.json", ok: true, values: [value("reputation.pollIntervalMs", 900)] },
  ];
  const one = service(() => ({ version: 1, files }));
  await one.svc.apply();
  // b.json now returns a forbidden key: refused, its previous value stays.
  files = [files[0], { file: "b.json", ok: true, values: [value("update.repo", "http://evil")] }];
  await one.svc.apply();
  expect(one.svc.current().reputation.pollIntervalMs).toBe(900);
  expect(one.svc.snapshot().failures).toMatchObject([
    { file: "b.json", code: "POL_FORBIDDEN_KEY", key: "update.repo" },
  ]);
  expect(one.health.list().map((r) => [r.source, r.code])).toEqual([["policy:b.json", "POL_FORBIDDEN_KEY"]]);

  // A new process: everything above is read back (the strict schema accepts what was written).
  const two = service(() => ({ version: 2, files: [files[0]] }));
  expect(two.svc.current().reputation.pollIntervalMs).toBe(900);
  expect(two.svc.snapshot().failures).toHaveLength(1);
  // Version 2 of the content no longer ships b.json: its value goes.
  await two.svc.apply();
  expect(two.svc.current().reputation.pollIntervalMs).toBe(250);
  expect(two.svc.current().liveProtection.timeoutMs).toBe(300);
  expect(two.events.find((e) => e.type === "config-changed")?.fields).toEqual({
    keys: ["reputation.pollIntervalMs"],
  });
});

test("a host answer that is not a remap result is refused whole; previous values stay", async () => {
  let answer: unknown = {
    version: 1,
    files: [{ file: "a.json", ok: true, values: [value("liveProtection.attempts", 4)] }],
  };
  const { svc } = service(() => answer);
  await svc.apply();
  answer = { version: 1, files: [{ file: "a.json", ok: true, values: "everything" }], extra: true };
  await svc.apply();
  expect(svc.current().liveProtection.attempts).toBe(4);
  expect(svc.snapshot().failures[0]).toMatchObject({ file: "RemapperRules" });
});
