#!/usr/bin/env bun
/**
 * Policy remapping benchmark (issue 15): 50 RemapperRules rule files applied
 * over a 1 MB tenant policy document — the safety checks (no DTD,
 * well-formedness), one DOM parse, every rule's XPath query and conversion,
 * and the resolver that merges the 50 overlays into the effective config.
 * Baseline in the same run: fast-xml-parser parsing the same document into
 * plain objects (and its validator alone), the cheapest way to read it at all.
 *
 *   bun bench/policy.ts [--runs 7] [--files 50] [--mb 1] [--json]
 *
 * Times are medians over --runs after one warm-up; memory is the JS heap
 * held by one parsed, indexed DOM (a remap's peak working set) against the
 * fast-xml-parser object tree of the same document (bun:jsc heapStats after
 * a full GC), and the process RSS growth over the whole run.
 */
import { heapStats } from "bun:jsc";
import { parseArgs } from "node:util";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { type OverlayCandidate, resolveEffective } from "../core/effective/resolver.ts";
import { remap } from "../handlers/RemapperRules/engine.ts";
import { parseRuleFile } from "../handlers/RemapperRules/format.ts";
import { parsePolicyXml } from "../handlers/RemapperRules/xml.ts";
import { indexDocumentOrder, selectXPath } from "../handlers/RemapperRules/xpath.ts";

const { values: opts } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    files: { type: "string", default: "50" },
    mb: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
const RUNS = Number(opts.runs);
const FILES = Number(opts.files);
const TARGET_BYTES = Number(opts.mb) * 1024 * 1024;

/** A console-shaped policy: sections of settings with attributes, text values and durations. */
function makePolicy(): { xml: string; sections: number; settings: number } {
  const parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<policy name="bench" revision="1">\n'];
  let size = parts[0]!.length;
  let s = 0;
  let settings = 0;
  while (size < TARGET_BYTES) {
    const section = [`  <section id="s${s}">\n`];
    for (let k = 0; k < 100; k++) {
      section.push(
        `    <setting name="k${k}" enabled="${(s + k) % 2 === 0}"><value>${(s * 7 + k) % 4000}</value><timeout>${(k % 30) + 1}s</timeout><list>/opt/a${k},/opt/b${k}</list></setting>\n`,
      );
      settings++;
    }
    section.push("  </section>\n");
    const text = section.join("");
    parts.push(text);
    size += text.length;
    s++;
  }
  parts.push("</policy>\n");
  return { xml: parts.join(""), sections: s, settings };
}

function makeRuleFiles(sections: number) {
  return Array.from({ length: FILES }, (_, i) => {
    const sec = `/policy/section[@id='s${i % sections}']`;
    const rules = [
      {
        id: "lookups",
        select: `${sec}/setting[@name='k1']/@enabled`,
        convert: { fn: "bool" },
        target: "liveProtection.lookups",
      },
      {
        id: "timeout",
        select: `${sec}/setting[@name='k2']/timeout`,
        convert: { fn: "duration", unit: "ms", min: 50, max: 30000 },
        target: "liveProtection.timeoutMs",
      },
      {
        id: "attempts",
        select: `count(${sec}/setting[@name='k3'])`,
        convert: { fn: "int", min: 1, max: 5 },
        target: "liveProtection.attempts",
      },
      {
        id: "memory",
        select: `${sec}/setting[@name='k4']/value`,
        convert: { fn: "int", min: 0, max: 4096 },
        target: "query.watchdog.memoryMb",
      },
      {
        id: "tagging",
        select: `${sec}/setting[@name='k5']/@enabled`,
        convert: { fn: "enum", map: { true: true, false: false } },
        target: "reputation.processTagging",
      },
      {
        id: "wall",
        select: `${sec}/setting[@name='k6']/timeout`,
        convert: { fn: "duration", unit: "s", min: 1, max: 3600 },
        target: "query.watchdog.wallSeconds",
      },
    ];
    return parseRuleFile(
      JSON.stringify({ schema: 1, document: "tp.xml", rules }),
      `bench-${String(i).padStart(2, "0")}.json`,
    );
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(fn: () => unknown): number {
  fn(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = Bun.nanoseconds();
    fn();
    samples.push((Bun.nanoseconds() - t0) / 1e6);
  }
  return median(samples);
}

const rss0 = process.memoryUsage().rss;
const policy = makePolicy();
const files = makeRuleFiles(policy.sections);
const docs = [{ name: "tp.xml", xml: policy.xml }];

const baselineValidate = time(() => XMLValidator.validate(policy.xml));
const baselineParse = time(() => new XMLParser({ ignoreAttributes: false }).parse(policy.xml));
const domParse = time(() => parsePolicyXml("tp.xml", policy.xml));
const remapMs = time(() => remap(files, docs));
const results = remap(files, docs);
const failed = results.filter((r) => !r.ok);
if (failed.length > 0) throw new Error(`bench rule files failed: ${JSON.stringify(failed[0])}`);
const candidates: OverlayCandidate[] = results.map((r) => ({
  file: r.file,
  next: { file: r.file, values: r.ok ? r.values : [] },
}));
// One rule's query, with and without the document-order index (xpath sorts node-sets with
// compareDocumentPosition; xmldom's walks the tree), and one descendant (//) query, the
// expensive shape a careless rule author writes.
const oneQuery = "/policy/section[@id='s3']/setting[@name='k1']/@enabled";
const plainDom = parsePolicyXml("tp.xml", policy.xml);
const queryPlain = time(() => selectXPath(oneQuery, plainDom));
const indexedDom = parsePolicyXml("tp.xml", policy.xml);
indexDocumentOrder(indexedDom);
const queryIndexed = time(() => selectXPath(oneQuery, indexedDom));
const descendant = time(() => selectXPath("//setting[@name='k6']/timeout", indexedDom));
const resolveMs = time(() => resolveEffective({ input: { stateDir: "/tmp/x" } }, candidates));

/** JS heap held by what `make` returns, after a full GC (the object stays referenced while measured). */
function heldMb(make: () => unknown): number {
  Bun.gc(true);
  const before = heapStats().heapSize;
  const kept = make();
  Bun.gc(true);
  const after = heapStats().heapSize;
  if (kept === undefined) throw new Error("nothing kept");
  return +((after - before) / 1048576).toFixed(1);
}
// A remap's peak working set is its DOM (results are a few hundred small values).
const domMb = heldMb(() => {
  const d = parsePolicyXml("tp.xml", policy.xml);
  indexDocumentOrder(d);
  return d;
});
const fxpMb = heldMb(() => new XMLParser({ ignoreAttributes: false }).parse(policy.xml));
const rss = process.memoryUsage().rss - rss0;

const rules = files.reduce((n, f) => n + f.rules.length, 0);
const out = {
  documentBytes: policy.xml.length,
  settings: policy.settings,
  ruleFiles: FILES,
  rules,
  runs: RUNS,
  ms: {
    baselineFxpValidate: +baselineValidate.toFixed(1),
    baselineFxpParse: +baselineParse.toFixed(1),
    checksAndDomParse: +domParse.toFixed(1),
    remapAll: +remapMs.toFixed(1),
    xpathAndConvert: +(remapMs - domParse).toFixed(1),
    resolve50Overlays: +resolveMs.toFixed(1),
    oneQueryWithoutOrderIndex: +queryPlain.toFixed(2),
    oneQueryWithOrderIndex: +queryIndexed.toFixed(2),
    oneDescendantQuery: +descendant.toFixed(1),
  },
  ratioRemapToFxpParse: +(remapMs / baselineParse).toFixed(2),
  memory: { domHeapMb: domMb, baselineFxpObjectHeapMb: fxpMb, rssGrowthMb: +(rss / 1048576).toFixed(1) },
};
if (opts.json) console.log(JSON.stringify(out, null, 2));
else {
  console.log(
    `policy: ${(out.documentBytes / 1048576).toFixed(2)} MB, ${out.settings} settings; ${FILES} rule files, ${rules} rules; median of ${RUNS}`,
  );
  console.log(`  baseline fast-xml-parser validate     ${out.ms.baselineFxpValidate} ms`);
  console.log(`  baseline fast-xml-parser parse        ${out.ms.baselineFxpParse} ms`);
  console.log(`  checks + xmldom DOM parse             ${out.ms.checksAndDomParse} ms`);
  console.log(
    `  remap: 50 files (parse + XPath + conv) ${out.ms.remapAll} ms  (${out.ratioRemapToFxpParse}× the fxp parse)`,
  );
  console.log(`    of which XPath + conversions        ${out.ms.xpathAndConvert} ms`);
  console.log(`  resolve 50 overlays (zod schema each) ${out.ms.resolve50Overlays} ms`);
  console.log(
    `  one rule query: ${out.ms.oneQueryWithOrderIndex} ms (without the order index: ${out.ms.oneQueryWithoutOrderIndex} ms)`,
  );
  console.log(`  one descendant query //setting[...]: ${out.ms.oneDescendantQuery} ms`);
  console.log(
    `  memory: DOM + order index ${out.memory.domHeapMb} MB of heap (baseline fxp object tree ${out.memory.baselineFxpObjectHeapMb} MB); RSS growth over the run ${out.memory.rssGrowthMb} MB`,
  );
}
