/**
 * Per-subscription conditions: each operator, the loose matching that errs
 * on delivering, load-time errors, the order against aggregation, events
 * held back never reaching Lua, and the with/without proof that
 * `agent rules test` runs (also as the real CLI, failing on a wrong condition).
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RuleLimitsSchema, type RuleSource } from "../_shared/lua/format.ts";
import { readEventsFile } from "./cli-agent-rules.ts";
import { ConditionsSchema, compileConditions } from "./conditions.ts";
import { BehaviorEngine } from "./engine.ts";
import type { BehaviorEvent } from "./events.ts";
import { checkPrefilter } from "./prefilter-check.ts";
import { conditionsMayGoFirst, SubscriptionGate } from "./subscription.ts";

setDefaultTimeout(20_000);

const ROOT = resolve(import.meta.dir, "../..");
const limits = RuleLimitsSchema.parse({});
const rule = (name: string, source: string): RuleSource => ({ name, file: `${name}.lua`, source });
const ev = (type: string, fields: Record<string, string | number>, time = 1_000): BehaviorEvent => ({
  type,
  time,
  ...fields,
});

describe("conditions", () => {
  test("equals, in-set, prefix, suffix and contains; all must hold; a missing field fails", () => {
    const p = compileConditions({
      exe_prefix: ["/tmp/", "/dev/shm/"],
      cmdline_contains: "stratum",
      name_in: ["xmrig", "kworker"],
    })!;
    expect(p({ exe: "/tmp/.x/kworker", cmdline: "-o stratum+tcp://x", name: "kworker" })).toBe(true);
    expect(p({ exe: "/usr/bin/kworker", cmdline: "-o stratum+tcp://x", name: "kworker" })).toBe(false);
    expect(p({ exe: "/tmp/a", cmdline: "nothing", name: "kworker" })).toBe(false);
    expect(p({ exe: "/tmp/a", cmdline: "stratum" })).toBe(false);
    const eq = compileConditions({ path: "/etc/ld.so.preload" })!;
    expect(eq({ path: "/etc/ld.so.preload" })).toBe(true);
    expect(eq({ path: "/etc/ld.so.preload.bak" })).toBe(false);
    const suffix = compileConditions({ path_suffix: "/.bash_history" })!;
    expect(suffix({ path: "/root/.bash_history" })).toBe(true);
    expect(suffix({ path: "/root/.bash_history~" })).toBe(false);
    expect(compileConditions({})).toBeNull();
  });

  test("numbers and strings holding the same number match each other (a rule may compare either way)", () => {
    const port = compileConditions({ rport_in: [4444, 3333] })!;
    expect(port({ rport: 4444 })).toBe(true);
    expect(port({ rport: "4444" })).toBe(true);
    expect(port({ rport: 443 })).toBe(false);
    expect(port({ rport: "" })).toBe(false);
    const uid = compileConditions({ uid: "0" })!;
    expect(uid({ uid: 0 })).toBe(true);
    expect(compileConditions({ rport_contains: "44" })!({ rport: 4444 })).toBe(true);
  });

  test("the schema refuses unknown operators, empty needles and oversized lists", () => {
    expect(ConditionsSchema.safeParse({ exe_in: ["/bin/sh"] }).success).toBe(true);
    expect(ConditionsSchema.safeParse({ exe_inn: ["/bin/sh"] }).success).toBe(false);
    expect(ConditionsSchema.safeParse({ cmdline_contains: "" }).success).toBe(false);
    expect(
      ConditionsSchema.safeParse({ exe_in: Array.from({ length: 1025 }, (_, i) => `/x${i}`) }).success,
    ).toBe(false);
  });

  test("a typo in on() options is a load error naming the rule, not a silent no-op", async () => {
    const bad = rule("typo", `on("process.start", { exe_inn = { "/bin/sh" } }, function(e) end)`);
    await expect(BehaviorEngine.create([bad], limits, null)).rejects.toMatchObject({
      code: "HND_RULE_CONDITION_INVALID",
      message: expect.stringContaining('typo: on("process.start") options: unknown option "exe_inn"'),
    });
    const wrongKind = rule("kind", `on("process.start", { exe_in = "/bin/sh" }, function(e) end)`);
    await expect(BehaviorEngine.create([wrongKind], limits, null)).rejects.toMatchObject({
      code: "HND_RULE_CONDITION_INVALID",
    });
    // A list cut short would hold back events: too many entries fail the load instead.
    const many = Array.from({ length: 1100 }, (_, i) => `"/x${i}"`).join(",");
    const huge = rule("huge", `on("process.start", { exe_in = { ${many} } }, function(e) end)`);
    await expect(BehaviorEngine.create([huge], limits, null)).rejects.toMatchObject({
      code: "HND_RULE_LOAD_FAILED",
      message: expect.stringContaining("more than 1024 entries"),
    });
  });

  test("conditions run before aggregation only where they cannot change what it decides", () => {
    expect(conditionsMayGoFirst({ coalesce: { window: 60, key: ["path", "exe"] } }, new Set(["path"]))).toBe(
      true,
    );
    expect(conditionsMayGoFirst({ coalesce: { window: 60 } }, new Set(["path"]))).toBe(true);
    expect(
      conditionsMayGoFirst({ min_rate: { count: 5, window: 10, key: ["pid"] } }, new Set(["path"])),
    ).toBe(false);
    expect(conditionsMayGoFirst({ first: { n: 1 } }, new Set(["exe"]))).toBe(false);
    // min_rate per pid over all writes, with a condition on the path: the rate counts every write.
    const gate = SubscriptionGate.fromOptions(
      "r",
      "file.write",
      { path_suffix: ".locked", min_rate: { count: 3, window: 10, key: ["pid"] } },
      {},
    )!;
    expect(gate.conditionsFirst).toBe(false);
    const admitted = ["/a", "/b", "/c.locked", "/d.locked"].map((path, i) =>
      gate.admit(ev("file.write", { pid: 7, path }), i * 100),
    );
    expect(admitted).toEqual([false, false, true, true]);
  });
});

describe("the pre-filter in the engine", () => {
  const counting = rule(
    "count",
    `local n = 0
on("process.start", { exe_in = { "/bin/sh", "/usr/bin/bash" } }, function(e)
  n = n + 1
  if e.exe == "/bin/sh" or e.exe == "/usr/bin/bash" then detect{ exe = e.exe, n = n } end
end)`,
  );
  const stream = [
    ev("process.start", { exe: "/usr/bin/ls" }),
    ev("process.start", { exe: "/bin/sh" }),
    ev("process.start", { exe: "/usr/bin/git" }),
    ev("process.start", { exe: "/usr/bin/bash" }),
  ];

  test("events that fail the conditions never reach Lua; the reactor sees only its own (on(type, opts, fn))", async () => {
    const engine = await BehaviorEngine.create([counting], limits, null);
    try {
      const r = engine.process(stream);
      expect(r.detections.map((d) => d.fields)).toEqual([
        { exe: "/bin/sh", n: 1 },
        { exe: "/usr/bin/bash", n: 2 },
      ]);
      expect(r.filtered).toBe(2);
      const s = engine.stats();
      expect(s.rules[0]!.calls).toBe(2);
      expect(s.conditions).toEqual([{ rule: "count", type: "process.start", seen: 4, passed: 2 }]);
    } finally {
      engine.close();
    }
    const all = await BehaviorEngine.create([counting], limits, null, { ignoreConditions: true });
    try {
      all.process(stream);
      expect(all.stats().rules[0]!.calls).toBe(4);
    } finally {
      all.close();
    }
  });

  test("the example rules give identical detections with and without their conditions, for far fewer calls", async () => {
    const dir = (d: string) =>
      readdirSync(d)
        .filter((f) => f.endsWith(".lua"))
        .sort()
        .map((f) => ({ name: f.slice(0, -4), file: join(d, f), source: readFileSync(join(d, f), "utf8") }));
    const rules = dir(join(ROOT, "examples/Behavior"));
    const library = { version: 1, modules: dir(join(ROOT, "examples/ProductRulesFeed")), limits };
    // The examples' own stream, and each of its events again as if from another host a minute later.
    const base = readEventsFile(join(ROOT, "examples/Behavior/events.jsonl")).events;
    const events = [...base, ...base.map((e) => ({ ...e, time: e.time + 60_000, pid: 9 }))];
    const engine = await BehaviorEngine.create(rules, limits, library);
    let detections: ReturnType<BehaviorEngine["process"]>["detections"];
    let calls: number;
    try {
      detections = engine.process(events).detections;
      calls = engine.stats().rules.reduce((n, r) => n + r.calls, 0);
    } finally {
      engine.close();
    }
    const check = await checkPrefilter(rules, limits, library, events, detections, calls);
    expect(check.differences).toEqual([]);
    expect(check.identical).toBe(true);
    expect(check.withPrefilter).toBeGreaterThan(10);
    expect(check.callsWith * 4).toBeLessThan(check.callsWithout);
  });

  test("a condition that holds back what the reactor detects on is caught, naming rule and line (CLI, exit 3)", async () => {
    const work = mkdtempSync(join(tmpdir(), "outpost-prefilter-"));
    try {
      writeFileSync(
        join(work, "wrong.lua"),
        `on("file.write", { path_prefix = "/etc/cron.d/" }, function(e)
  if e.path:find("cron", 1, true) then detect{ path = e.path } end
end)`,
      );
      writeFileSync(
        join(work, "events.jsonl"),
        [
          { type: "file.write", time: 1, path: "/etc/cron.d/x" },
          { type: "file.write", time: 2, path: "/var/spool/cron/root" },
        ]
          .map((e) => JSON.stringify(e))
          .join("\n"),
      );
      const proc = Bun.spawn(
        [
          process.execPath,
          join(ROOT, "bin/agent.ts"),
          "rules",
          "test",
          join(work, "wrong.lua"),
          "--events",
          join(work, "events.jsonl"),
          "--json",
        ],
        { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
      );
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(code).toBe(3);
      const r = JSON.parse(out);
      expect(r.prefilter).toMatchObject({
        identical: false,
        withPrefilter: 1,
        withoutPrefilter: 2,
        error: { code: "HND_RULE_PREFILTER_MISMATCH" },
        differences: [{ rule: "wrong", kind: "missing", line: 2, fields: { path: "/var/spool/cron/root" } }],
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
