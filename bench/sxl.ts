#!/usr/bin/env bun
import { createHash } from "node:crypto";
/**
 * Live Protection (SXL over DNS):
 *  1. lookups/s of the agent's SXL client against `contentctl sxl serve`
 *     running as its own process, cache off, unique names (half answered,
 *     half NXDOMAIN), 64 in flight — against the same names resolved through
 *     node:dns's Resolver (c-ares) in the same run as the baseline;
 *  2. the share of cloud lookups the reputation allowlist avoids on a real
 *     file set: every ELF file in /usr/bin is detected by a lookup-enabled
 *     signature, and LocalRepData holds the SHA-256 of the files the OS
 *     packages (dpkg) installed there — what a vendor allowlists. Software
 *     installed outside the package manager (/usr/local/bin) is not listed.
 *
 *   bun bench/sxl.ts [--lookups 50000] [--concurrency 64] [--dirs /usr/bin,/usr/local/bin] [--json]
 */
import { Resolver } from "node:dns/promises";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  type Capabilities,
  type ContentHandler,
  type ContentView,
  viewOverBytes,
} from "../core/handler/contract.ts";
import { datasetAHandler } from "../handlers/DatasetA/index.ts";
import { ScanService } from "../handlers/DatasetA/scan/service.ts";
import { SxlClient } from "../handlers/DatasetA/sxl/client.ts";
import { queryName } from "../handlers/DatasetA/sxl/protocol.ts";
import { localRepDataHandler } from "../handlers/LocalRepData/index.ts";
import { buildReputation, tableFromEntries } from "../handlers/LocalRepData/writer.ts";

const { values } = parseArgs({
  options: {
    lookups: { type: "string", default: "50000" },
    concurrency: { type: "string", default: "64" },
    dirs: { type: "string", default: "/usr/bin,/usr/local/bin" },
    json: { type: "boolean" },
  },
});
const N = Number(values.lookups);
const C = Number(values.concurrency);
const ZONE = "sxl.bench.test";
const work = mkdtempSync(join(tmpdir(), "outpost-bench-sxl-"));
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

// ---- the server, as its own process
const known = Array.from({ length: N / 2 }, (_, i) => sha(`known-${i}`));
const unknown = Array.from({ length: N / 2 }, (_, i) => sha(`unknown-${i}`));
const verdictsFile = join(work, "verdicts.json");
writeFileSync(
  verdictsFile,
  JSON.stringify({
    zone: ZONE,
    ttl: 300,
    negativeTtl: 60,
    verdicts: known.map((h, i) => ({ sha256: h, verdict: i % 3 ? "malware" : "ignore" })),
  }),
);
const server = Bun.spawn(
  [
    process.execPath,
    join(import.meta.dir, "../bin/contentctl.ts"),
    "sxl",
    "serve",
    "--port",
    "0",
    "--verdicts",
    verdictsFile,
  ],
  {
    stdout: "pipe",
    stderr: "ignore",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  },
);
process.on("exit", () => {
  server.kill();
  rmSync(work, { recursive: true, force: true });
});
const firstLine = await (async () => {
  const reader = server.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
})();
const port = (JSON.parse(firstLine) as { port: number }).port;

const hashes = known.flatMap((h, i) => [h, unknown[i]!]);
async function pool(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < n) await fn(next++);
    }),
  );
  return performance.now() - start;
}

const client = new SxlClient({
  zone: ZONE,
  resolver: { host: "127.0.0.1", port },
  cacheSize: 0,
  ratePerSecond: 1e9,
  burst: 1e9,
  timeoutMs: 2000,
});
const outcomes: Record<string, number> = {};
await pool(2000, (i) => client.lookup(hashes[i % hashes.length]!, "Bench.Detection")); // warm-up
const clientMs = await pool(N, async (i) => {
  const r = await client.lookup(hashes[i]!, "Bench.Detection");
  outcomes[r.status] = (outcomes[r.status] ?? 0) + 1;
});
const resolver = new Resolver({ timeout: 2000, tries: 1 });
resolver.setServers([`127.0.0.1:${port}`]);
const names = hashes.map((h) => queryName(h, "Bench.Detection", ZONE));
await pool(2000, (i) => resolver.resolve4(names[i % names.length]!).catch(() => null));
const caresMs = await pool(N, (i) => resolver.resolve4(names[i]!).catch(() => null));

// ---- the allowlist on a real file set
function dpkgFiles(dir: string): Set<string> {
  const owned = new Set<string>();
  const info = "/var/lib/dpkg/info";
  if (!existsSync(info)) return owned;
  for (const f of readdirSync(info)) {
    if (!f.endsWith(".list")) continue;
    for (const line of readFileSync(join(info, f), "utf8").split("\n")) {
      if (line.startsWith(`${dir}/`)) owned.add(line);
      // Merged /usr: packages may still list /bin/x for what lives at /usr/bin/x.
      else if (dir.startsWith("/usr/") && line.startsWith(`${dir.slice(4)}/`)) owned.add(`/usr${line}`);
    }
  }
  return owned;
}
const dirs = values.dirs!.split(",").filter(Boolean);
const elfs: string[] = [];
const allow: { sha256: string; score: number; class: "system" }[] = [];
const perDir: Record<string, { elf: number; allowlisted: number }> = {};
for (const dir of dirs) {
  if (!existsSync(dir)) continue;
  const owned = dpkgFiles(dir);
  perDir[dir] = { elf: 0, allowlisted: 0 };
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (!st.isFile()) continue;
    const head = readFileSync(p).subarray(0, 4);
    if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) continue;
    elfs.push(p);
    perDir[dir]!.elf++;
    if (owned.has(p)) {
      allow.push({ sha256: sha(readFileSync(p)), score: 90, class: "system" });
      perDir[dir]!.allowlisted++;
    }
  }
}
const rep = buildReputation(tableFromEntries(allow, false), tableFromEntries([], true)).bytes;
const view = (type: string, files: Record<string, Uint8Array | string>): ContentView =>
  viewOverBytes({
    type,
    version: 1,
    signingTime: new Date(0).toISOString(),
    files: Object.keys(files),
    read: (p) =>
      typeof files[p] === "string" ? new TextEncoder().encode(files[p] as string) : (files[p] as Uint8Array),
    readText: (p) =>
      typeof files[p] === "string" ? (files[p] as string) : new TextDecoder().decode(files[p] as Uint8Array),
  });
const caps: Capabilities = { log: { info() {}, warn() {} }, events: { emit() {} }, workDir: work };
const handlers = new Map<string, { h: ContentHandler<unknown>; live: unknown }>();
for (const [h, v] of [
  [
    datasetAHandler,
    view("DatasetA", { "g.ndb": "Bench.ELF.Lookup:6:0:7f454c46\n", "lookup.txt": "Bench.ELF.Lookup\n" }),
  ],
  [localRepDataHandler, view("LocalRepData", { "reputation.bin": rep })],
] as const) {
  await h.validate(v);
  handlers.set(h.manifest.name, { h: h as ContentHandler<unknown>, live: await h.load(v, caps) });
}
const call = async (type: string, method: string, args: unknown) => {
  const e = handlers.get(type)!;
  return e.h.call!(e.live, method, args);
};
const scanClient = new SxlClient({
  zone: ZONE,
  resolver: { host: "127.0.0.1", port },
  ratePerSecond: 1e9,
  burst: 1e9,
});
const service = new ScanService({ call, policy: { lookups: true, samples: false }, sxl: scanClient });
const report = await service.scanPaths(elfs);
const lookupEnabled = report.detections.filter((d) => d.name === "Bench.ELF.Lookup");
const avoided = lookupEnabled.filter((d) => d.live?.status === "skipped").length;
const sent = scanClient.stats.queries;

const result = {
  lookups: N,
  concurrency: C,
  sxlClient: { lookupsPerSecond: Math.round(N / (clientMs / 1000)), outcomes },
  caresBaseline: { lookupsPerSecond: Math.round(N / (caresMs / 1000)) },
  ratio: Math.round((caresMs / clientMs) * 100) / 100,
  allowlist: {
    dirs: perDir,
    elfFiles: elfs.length,
    allowlisted: allow.length,
    lookupEnabledDetections: lookupEnabled.length,
    lookupsAvoided: avoided,
    dnsQueriesSent: sent,
    shareAvoided: Math.round((avoided / Math.max(1, lookupEnabled.length)) * 1000) / 10,
  },
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`SXL lookups against contentctl sxl serve (${N} unique names, ${C} in flight, no cache)`);
  console.log(
    `  agent SXL client     ${result.sxlClient.lookupsPerSecond.toLocaleString()} lookups/s  ${JSON.stringify(outcomes)}`,
  );
  console.log(`  node:dns (c-ares)    ${result.caresBaseline.lookupsPerSecond.toLocaleString()} lookups/s`);
  console.log(`  ratio                ${result.ratio}×`);
  const a = result.allowlist;
  const where = Object.entries(a.dirs)
    .map(([d, c]) => `${d} ${c.allowlisted}/${c.elf}`)
    .join(", ");
  console.log(
    `allowlist: ${a.elfFiles} ELF files, ${a.allowlisted} allowlisted as dpkg-installed (${where})`,
  );
  console.log(
    `  lookup-enabled detections ${a.lookupEnabledDetections}, avoided by reputation ${a.lookupsAvoided} (${a.shareAvoided} %), DNS queries sent ${a.dnsQueriesSent}`,
  );
}
process.exit(0);
