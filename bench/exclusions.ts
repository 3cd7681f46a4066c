/**
 * Exclusion match cost per event (issue 17's closing note): the
 * ExclusionMatcher (core/exclusions/matcher.ts) at 100 / 10k / 100k
 * exclusions, against two baselines — one `Set.has` per event (the floor:
 * what an exact-match lookup costs) and a linear `startsWith` scan over the
 * exclusion list (what the old on-access `excludePaths` check does).
 * Events are file paths 5–9 levels deep; half fall under an exclusion.
 * Also times building the matcher (what a rules run or config change pays),
 * and the digest + signer check a scan makes per detected object
 * (handlers/DatasetA/scan/exclusion-check.ts) against half `sha256`, half
 * `signer` exclusions, with `Set.has` on the digest as its baseline.
 * Times are CPU time (best of 3 rounds), not wall time: the shared box is loaded.
 *
 *   nice bun bench/exclusions.ts [--events 200000] [--json]
 */
import { parseArgs } from "node:util";
import { ExclusionMatcher } from "../core/exclusions/matcher.ts";
import type { Exclusion } from "../core/exclusions-config.ts";

const { values } = parseArgs({
  options: { events: { type: "string", default: "200000" }, json: { type: "boolean" } },
});
const EVENTS = Number(values.events);

let seed = 42;
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const seg = () => Math.floor(rand() * 1e9).toString(36);

function makeExclusions(n: number): Exclusion[] {
  const out: Exclusion[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      kind: "path",
      value: `/srv/${seg()}/${seg()}${i % 3 === 0 ? `/${seg()}` : ""}`,
      scope: ["onAccess", "scan"],
      reason: "bench",
      source: "APPFEED:bench",
    });
  }
  return out;
}

function makeEvents(ex: Exclusion[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < EVENTS; i++) {
    const depth = 2 + Math.floor(rand() * 5);
    const tail = Array.from({ length: depth }, seg).join("/");
    out.push(i % 2 === 0 ? `${ex[Math.floor(rand() * ex.length)]!.value}/${tail}` : `/home/${seg()}/${tail}`);
  }
  return out;
}

/** CPU time (user + system), ns: on a shared, loaded machine wall time measures the neighbours. */
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

function time(fn: () => number): { nsPerEvent: number; hits: number } {
  fn(); // warm up (JIT)
  let best = Number.POSITIVE_INFINITY;
  let hits = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = cpuNs();
    hits = fn();
    best = Math.min(best, (cpuNs() - t0) / EVENTS);
  }
  return { nsPerEvent: best, hits };
}

const hex64 = () =>
  Array.from({ length: 8 }, () =>
    Math.floor(rand() * 0xffffffff)
      .toString(16)
      .padStart(8, "0"),
  ).join("");

/** Per object: its SHA-256 and its signer, as the scan's exclusion check asks (half excluded). */
function digestRow(n: number) {
  const ex: Exclusion[] = Array.from({ length: n }, (_, i) => ({
    kind: i % 2 === 0 ? "sha256" : "signer",
    value: hex64(),
    scope: ["scan", "onAccess"],
    reason: "bench",
    source: "config",
  }));
  const objects = Array.from({ length: EVENTS }, (_, i) => ({
    sha256: i % 2 === 0 ? ex[Math.floor(rand() * n)]!.value : hex64(),
    signer: hex64(),
  }));
  const matcher = new ExclusionMatcher(ex);
  const m = time(() => {
    let h = 0;
    for (const o of objects) if (matcher.digest("scan", o.sha256) || matcher.signer("scan", o.signer)) h++;
    return h;
  });
  const set = new Set(ex.map((e) => e.value));
  const s = time(() => {
    let h = 0;
    for (const o of objects) if (set.has(o.sha256)) h++;
    return h;
  });
  return { digestSignerNs: Math.round(m.nsPerEvent), digestSetHasNs: Math.round(s.nsPerEvent) };
}

const rows: Record<string, unknown>[] = [];
for (const n of [100, 10_000, 100_000]) {
  const ex = makeExclusions(n);
  const events = makeEvents(ex);
  const t0 = Bun.nanoseconds();
  const matcher = new ExclusionMatcher(ex);
  const buildMs = (Bun.nanoseconds() - t0) / 1e6;
  const m = time(() => {
    let h = 0;
    for (const p of events) if (matcher.file("onAccess", p)) h++;
    return h;
  });
  const set = new Set(ex.map((e) => e.value));
  const s = time(() => {
    let h = 0;
    for (const p of events) if (set.has(p)) h++;
    return h;
  });
  // The linear scan is O(n) per event: time a sample at 10k/100k and scale.
  const prefixes = ex.map((e) => `${e.value}/`);
  const sample = n >= 10_000 ? Math.max(200, Math.floor(EVENTS / (n / 100))) : EVENTS;
  const lt0 = cpuNs();
  let lh = 0;
  for (let i = 0; i < sample; i++) {
    const p = events[i]!;
    if (prefixes.some((x) => p.startsWith(x))) lh++;
  }
  const linearNs = (cpuNs() - lt0) / sample;
  rows.push({
    exclusions: n,
    buildMs: Math.round(buildMs * 10) / 10,
    matcherNs: Math.round(m.nsPerEvent),
    setHasNs: Math.round(s.nsPerEvent),
    ratioToSet: Math.round((m.nsPerEvent / s.nsPerEvent) * 10) / 10,
    linearScanNs: Math.round(linearNs),
    matcherHits: m.hits,
    linearHitsInSample: lh,
    ...digestRow(n),
  });
}

if (values.json) console.log(JSON.stringify({ events: EVENTS, rows }, null, 2));
else {
  console.log(`exclusion match cost per event (${EVENTS} events, half excluded; paths 5–9 levels deep)`);
  console.log(
    "exclusions  build ms  matcher ns  Set.has ns  ratio  linear startsWith ns  digest+signer ns  digest Set.has ns",
  );
  for (const r of rows) {
    console.log(
      `${String(r.exclusions).padStart(10)}  ${String(r.buildMs).padStart(8)}  ${String(r.matcherNs).padStart(10)}  ${String(r.setHasNs).padStart(10)}  ${String(r.ratioToSet).padStart(5)}  ${String(r.linearScanNs).padStart(20)}  ${String(r.digestSignerNs).padStart(16)}  ${String(r.digestSetHasNs).padStart(17)}`,
    );
  }
}
