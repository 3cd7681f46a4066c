#!/usr/bin/env bun
/**
 * Coverage of osquery's own example packs (handlers/ScheduledQueryPack/
 * testdata/osquery-packs) by the embedded engine: per pack, how many of the
 * queries osquery would schedule on Linux (no platform, or linux/posix/
 * ubuntu/centos, at pack or query level) run through the engine without an
 * error. Each failure is listed with its error code, so the gap is visible.
 *
 *   bun bench/query-coverage.ts [--json]
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { HandlerError } from "../core/errors.ts";
import { parsePack, platformMatches } from "../handlers/ScheduledQueryPack/pack.ts";
import { EmbeddedEngine } from "../plugins/query/embedded.ts";

export const PACK_DIR = join(
  import.meta.dir,
  "..",
  "handlers",
  "ScheduledQueryPack",
  "testdata",
  "osquery-packs",
);

export interface QueryOutcome {
  name: string;
  ok: boolean;
  rows: number;
  ms: number;
  code?: string;
  error?: string;
}

export interface PackCoverage {
  pack: string;
  linux: number;
  ok: number;
  outcomes: QueryOutcome[];
}

export interface Coverage {
  packs: PackCoverage[];
  linux: number;
  ok: number;
  percent: number;
}

/** Runs every Linux/POSIX query of every pack file in `dir` once through the embedded engine. */
export function measureCoverage(dir = PACK_DIR, engine = new EmbeddedEngine()): Coverage {
  const packs: PackCoverage[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".conf"))
    .sort()) {
    const name = file.replace(/\.conf$/, "");
    const pack = parsePack(name, `packs/${file}`, readFileSync(join(dir, file), "utf8"));
    const outcomes: QueryOutcome[] = [];
    if (platformMatches(pack.platform)) {
      for (const q of pack.queries) {
        if (!platformMatches(q.platform)) continue;
        const t0 = performance.now();
        try {
          const r = engine.querySync(q.sql);
          outcomes.push({ name: q.name, ok: true, rows: r.rows.length, ms: performance.now() - t0 });
        } catch (e) {
          const code = e instanceof HandlerError ? e.code : "UNEXPECTED";
          outcomes.push({
            name: q.name,
            ok: false,
            rows: 0,
            ms: performance.now() - t0,
            code,
            error: (e as Error).message,
          });
        }
      }
    }
    packs.push({ pack: name, linux: outcomes.length, ok: outcomes.filter((o) => o.ok).length, outcomes });
  }
  const linux = packs.reduce((n, p) => n + p.linux, 0);
  const ok = packs.reduce((n, p) => n + p.ok, 0);
  return { packs, linux, ok, percent: linux ? (100 * ok) / linux : 0 };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { json: { type: "boolean", default: false } } });
  const c = measureCoverage();
  if (values.json) {
    console.log(JSON.stringify(c, null, 2));
  } else {
    for (const p of c.packs) {
      const pct = p.linux ? ((100 * p.ok) / p.linux).toFixed(0) : "-";
      console.log(`${p.pack.padEnd(22)} ${String(p.ok).padStart(3)}/${String(p.linux).padEnd(3)} ${pct}%`);
      for (const o of p.outcomes) if (!o.ok) console.log(`    ✗ ${o.name}: ${o.code} ${o.error}`);
    }
    console.log(`${"total".padEnd(22)} ${String(c.ok).padStart(3)}/${c.linux}   ${c.percent.toFixed(1)}%`);
  }
}
