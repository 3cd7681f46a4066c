/** ESH rule checks, one test per attack (E1–E6 in rules.ts), and the matcher's linear time. */
import { describe, expect, test } from "bun:test";
import { EshEngine } from "./engine.ts";
import { type EshRuleInput, parseRuleFiles } from "./rules.ts";

const rule = (patch: Partial<EshRuleInput> & Record<string, unknown> = {}): string =>
  JSON.stringify({
    id: "r1",
    logs: ["agent"],
    pattern: "repo unreachable",
    minCount: 1,
    windowSeconds: 60,
    kba: { id: "KBA-1", url: "https://kb.example.com/KBA-1", title: "Repo" },
    ...patch,
  });

const problem = (text: string) => {
  const r = parseRuleFiles([{ name: "rules/a.jsonl", text }]);
  if (r.ok) throw new Error("accepted");
  return r.problem;
};

describe("refused rule files name the file and line", () => {
  test("E3: backreferences and lookaround are refused (they need backtracking)", () => {
    for (const pattern of ["(a)\\1", "(?=x)y", "(?!x)y", "(?<=x)y", "(?<!x)y"]) {
      const p = problem(`# comment\n\n${rule({ id: "ok" })}\n${rule({ pattern })}\n`);
      expect(p.file).toBe("rules/a.jsonl");
      expect(p.line).toBe(4);
      expect(p.reason).toContain("E3");
    }
    expect(problem(rule({ pattern: "(a)\\1" })).reason).toContain("backreferences");
    expect(problem(rule({ pattern: "(?=x)" })).reason).toContain("lookaround");
    expect(problem(rule({ pattern: "[" })).reason).toContain("missing closing ]");
  });
  test("E1: not JSON, unknown fields, missing fields", () => {
    expect(problem("{nope").reason).toContain("E1: not a JSON object");
    expect(problem(rule({ exec: "rm -rf /" })).reason).toContain("E1");
    expect(problem(JSON.stringify({ id: "x" })).reason).toContain("E1");
    expect(problem("").reason).toContain("no rules");
  });
  test("E2: duplicate ids across files", () => {
    const r = parseRuleFiles([
      { name: "a.jsonl", text: rule() },
      { name: "b.jsonl", text: `\n${rule()}` },
    ]);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.problem).toEqual({
        file: "b.jsonl",
        line: 2,
        reason: "E2: rule id r1 already defined at a.jsonl:1",
      });
  });
  test("E4: log sources other than agent, journal:UNIT, file:/absolute/path", () => {
    for (const logs of [
      ["syslog"],
      ["file:relative.log"],
      ["file:/var/log/../../etc/shadow"],
      ["file:/var/log/*.log"],
      ["journal:bad unit"],
      ["file:/var/log/"],
      [],
    ])
      expect(problem(rule({ logs })).reason).toMatch(/E4|logs/);
  });
  test("E5: a KBA link that is not https", () => {
    expect(
      problem(rule({ kba: { id: "KBA-1", url: "http://kb.example.com/", title: "t" } })).reason,
    ).toContain("E5");
    expect(problem(rule({ kba: { id: "KBA-1", url: "javascript:alert(1)", title: "t" } })).reason).toContain(
      "kba.url",
    );
  });
  test("E6: an over-long pattern", () => {
    expect(problem(rule({ pattern: "a".repeat(1025) })).reason).toContain("E6");
  });
});

describe("matcher", () => {
  const parsed = (lines: string[]) => {
    const r = parseRuleFiles([{ name: "r.jsonl", text: lines.join("\n") }]);
    if (!r.ok) throw new Error(r.problem.reason);
    return r.rules;
  };

  test("a pattern exponential for a backtracking engine runs in linear time", () => {
    const engine = new EshEngine(
      parsed([rule({ pattern: "^(a+)+$" }), rule({ id: "r2", pattern: "(x+x+)+y" })]),
    );
    // Best of 5: a loaded machine adds pauses to single runs, never removes work.
    const time = (n: number) => {
      const lines = [`${"a".repeat(n)}!`, "x".repeat(n)];
      let best = Number.POSITIVE_INFINITY;
      for (let k = 0; k < 5; k++) {
        const t0 = performance.now();
        engine.feed("agent", lines, 1_000_000);
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    time(1000); // warm-up
    const small = time(4000);
    const large = time(16000);
    // A backtracking engine needs ~2^n steps here (JavaScript's RegExp does not finish n = 40).
    expect(large).toBeLessThan(5000);
    expect(large / Math.max(small, 0.5)).toBeLessThan(16);
    expect(engine.findings()).toHaveLength(0);
  });

  test("minCount within windowSeconds opens a finding; quiet clears it; other sources are ignored", () => {
    const engine = new EshEngine(parsed([rule({ minCount: 3, windowSeconds: 60, pattern: "UPD_NETWORK" })]));
    const t0 = Date.parse("2026-12-01T00:00:00Z");
    expect(engine.feed("agent", ["UPD_NETWORK", "UPD_NETWORK"], t0).opened).toHaveLength(0);
    // The window slides: the first two are older than 60 s by now.
    expect(engine.feed("agent", ["UPD_NETWORK"], t0 + 61_000).opened).toHaveLength(0);
    expect(
      engine.feed("file:/var/log/x", ["UPD_NETWORK", "UPD_NETWORK", "UPD_NETWORK"], t0 + 62_000).opened,
    ).toHaveLength(0);
    const r = engine.feed("agent", ["UPD_NETWORK", "noise", "UPD_NETWORK"], t0 + 70_000);
    expect(r.opened).toHaveLength(1);
    expect(r.opened[0]).toMatchObject({
      ruleId: "r1",
      count: 3,
      firstSeen: "2026-12-01T00:01:01.000Z",
      sources: ["agent"],
    });
    expect(engine.feed("agent", ["UPD_NETWORK"], t0 + 80_000).updated[0]?.count).toBe(4);
    expect(engine.expire(t0 + 80_000 + 59_000, 60_000)).toHaveLength(0);
    expect(engine.expire(t0 + 80_000 + 60_000, 60_000).map((f) => f.ruleId)).toEqual(["r1"]);
    expect(engine.findings()).toHaveLength(0);
  });
});
