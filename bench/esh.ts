#!/usr/bin/env bun
/**
 * ESH throughput: lines per second through the self-help matcher with 200
 * rules, against `grep -E -c -f PATTERNS` over the same file in the same run
 * (GNU grep: a DFA, the fastest common baseline). Both count the lines that
 * match at least one rule; the counts must agree.
 *
 *   bun bench/esh.ts [--lines 500000] [--rules 200] [--json]
 *
 * The file is synthetic agent log (the JSON-lines records the agent writes:
 * update cycles, installs, rejections with codes, host crashes), ~0.5 %
 * of lines matching some rule. The 200 rules are the 4 agent rules of
 * examples/ESH plus generated ones of the same shape (alternations of
 * message texts and error codes). Patterns stay in the subset RE2 and POSIX
 * ERE share, so grep reads the same patterns. ESH is timed twice, best of
 * 3 each: the matcher alone (lines already in memory), and tailer + matcher
 * (reading the file as the supervisor does); grep best of 3 too.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EshEngine } from "../handlers/ESH/engine.ts";
import { parseRuleFiles } from "../handlers/ESH/rules.ts";
import { FileTailer } from "../handlers/ESH/tail.ts";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const LINES = arg("lines", 500_000);
const RULES = arg("rules", 200);
const JSON_OUT = process.argv.includes("--json");

const dir = mkdtempSync(join(tmpdir(), "outpost-bench-esh-"));
try {
  // Rules: the shipped agent rules + generated ones.
  const shipped = readFileSync(resolve(import.meta.dir, "../examples/ESH/agent.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"));
  const rules = [...shipped];
  for (let i = rules.length; i < RULES; i++) {
    rules.push(
      JSON.stringify({
        id: `gen-${i}`,
        logs: ["agent"],
        pattern: `"msg":"(worker ${i} stalled|queue ${i} overflow)"|"code":"GEN_${i}_(FAIL|TIMEOUT)"`,
        minCount: 2,
        windowSeconds: 600,
        kba: {
          id: `KBA-${5000 + i}`,
          url: `https://kb.outpost.example/KBA-${5000 + i}`,
          title: `generated ${i}`,
        },
      }),
    );
  }
  const parsed = parseRuleFiles([{ name: "bench.jsonl", text: rules.join("\n") }]);
  if (!parsed.ok) throw new Error(parsed.problem.reason);
  // grep reads the same patterns, one per line (its -f semantics: a line matches if any does).
  const patternsFile = join(dir, "patterns.txt");
  writeFileSync(patternsFile, `${parsed.rules.map((r) => r.pattern).join("\n")}\n`);

  // Log: realistic agent records; every 200th line matches a rule.
  const MSGS = [
    '"level":"info","msg":"content installed","component":"agent","type":"Behavior","version":12',
    '"level":"info","msg":"index offers a content type with no handler here; ignored","component":"agent","type":"Foo"',
    '"level":"info","msg":"host started","component":"agent","group":"scanner","pid":4242',
    '"level":"debug","msg":"query ran","component":"query","name":"pack_users","rows":12,"ms":3.2',
    '"level":"info","msg":"self-help rules loaded","component":"agent","rules":5',
  ];
  const MATCHING = [
    '"level":"warn","msg":"update rejected","component":"agent","file":"http://repo/groups/g/index.json","code":"UPD_NETWORK","reason":"connection refused"',
    '"level":"error","msg":"host crashed","component":"agent","group":"behavior","reason":"signal SIGKILL"',
    '"level":"warn","msg":"worker 77 stalled","component":"agent"',
    '"level":"warn","msg":"update rejected","component":"agent","code":"GEN_150_TIMEOUT"',
  ];
  const out: string[] = [];
  for (let i = 0; i < LINES; i++) {
    const body = i % 200 === 199 ? MATCHING[((i / 200) % MATCHING.length) | 0] : MSGS[i % MSGS.length];
    out.push(
      `{"ts":"2026-12-03T17:${String(((i / 60000) % 60) | 0).padStart(2, "0")}:00.${String(i % 1000).padStart(3, "0")}Z",${body}}`,
    );
  }
  const logFile = join(dir, "agent.log");
  writeFileSync(logFile, `${out.join("\n")}\n`);
  const bytes = Buffer.byteLength(readFileSync(logFile));

  // grep -E -c, best of 3 like ESH.
  let grepMs = Number.POSITIVE_INFINITY;
  let grepCount = -1;
  for (let run = 0; run < 3; run++) {
    const g0 = performance.now();
    const grep = Bun.spawnSync(["grep", "-E", "-c", "-f", patternsFile, logFile], { env: { LC_ALL: "C" } });
    grepMs = Math.min(grepMs, performance.now() - g0);
    grepCount = Number(grep.stdout.toString().trim());
  }

  // ESH matcher alone (best of 3), then tailer + matcher.
  let eshMs = Number.POSITIVE_INFINITY;
  let eshCount = 0;
  for (let run = 0; run < 3; run++) {
    const engine = new EshEngine(parsed.rules);
    const t0 = performance.now();
    engine.feed("agent", out, Date.now());
    eshMs = Math.min(eshMs, performance.now() - t0);
    eshCount = engine.counters.matchedLines;
  }
  // Tailer + matcher, best of 3 as well (a fresh tailer and engine each time).
  let tailMs = Number.POSITIVE_INFINITY;
  let tailCount = 0;
  for (let run = 0; run < 3; run++) {
    const engine = new EshEngine(parsed.rules);
    const t1 = performance.now();
    const tailer = new FileTailer(logFile, { backlogBytes: bytes + 1 });
    for (;;) {
      const lines = tailer.poll();
      if (lines.length === 0) break;
      engine.feed("agent", lines, Date.now());
    }
    tailMs = Math.min(tailMs, performance.now() - t1);
    tailer.close();
    tailCount = engine.counters.matchedLines;
  }

  const result = {
    lines: LINES,
    bytes,
    rules: parsed.rules.length,
    matchingLines: { esh: eshCount, grep: grepCount, tailer: tailCount },
    eshLinesPerSecond: Math.round(LINES / (eshMs / 1000)),
    eshWithTailerLinesPerSecond: Math.round(LINES / (tailMs / 1000)),
    grepLinesPerSecond: Math.round(LINES / (grepMs / 1000)),
    ratioEshToGrep: Math.round((grepMs / eshMs) * 1000) / 1000,
    ratioEshWithTailerToGrep: Math.round((grepMs / tailMs) * 1000) / 1000,
  };
  if (eshCount !== grepCount || tailCount !== grepCount)
    throw new Error(`counts differ: ${JSON.stringify(result.matchingLines)}`);
  if (JSON_OUT) console.log(JSON.stringify(result));
  else {
    console.log(
      `ESH bench: ${result.lines} lines (${(bytes / 1e6).toFixed(1)} MB), ${result.rules} rules, ${grepCount} matching lines (ESH = grep)`,
    );
    console.log(`  ESH matcher          ${result.eshLinesPerSecond.toLocaleString()} lines/s`);
    console.log(`  ESH tailer + matcher ${result.eshWithTailerLinesPerSecond.toLocaleString()} lines/s`);
    console.log(`  grep -E -c -f        ${result.grepLinesPerSecond.toLocaleString()} lines/s`);
    console.log(`  ESH / grep: ${result.ratioEshToGrep}× (with tailer ${result.ratioEshWithTailerToGrep}×)`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
