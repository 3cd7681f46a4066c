/**
 * What moving the bytes costs `agent scan`: the same tree scanned by the same sandboxed DatasetA host,
 * with the bytes copied through the host's pipe (the baseline, as before the shared region) and read
 * straight into its shared transfer region (core/host/shared-transfer.ts), alternating in one run.
 * Tree: the realistic on-access tree (/usr/bin, /usr/lib/x86_64-linux-gnu, /usr/share/doc) plus large
 * files cut from the same system files up to --mb, so both whole-file calls and streamed 8 MiB chunks
 * count. Signatures: 10,000 hash + 10,000 body (bench/realistic-sigs.ts), or --sigs small (200 bodies:
 * the transfer's share of the cost, with the matcher nearly out of the way).
 * Reports medians over --runs of wall time and CPU (supervisor: this process, all threads; scanner host
 * from /proc/PID/stat), and ratios shared/pipe from the same run.
 *
 *   bun bench/scan-transfer.ts [--mb 300] [--runs 3] [--sigs realistic|small] [--json]
 */
import "reflect-metadata";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { log } from "../core/log.ts";
import { ScanService } from "../handlers/DatasetA/scan/service.ts";
import { datasetAHost } from "./dataset-host.ts";
import { realisticTree } from "./onaccess-trees.ts";
import { realisticSignatureSet } from "./realistic-sigs.ts";

const { values } = parseArgs({
  options: {
    mb: { type: "string", default: "300" },
    runs: { type: "string", default: "3" },
    sigs: { type: "string", default: "realistic" },
    json: { type: "boolean" },
  },
});
const quiet = log.child({ component: "bench" });
quiet.setStderr(false);
const RUNS = Number(values.runs);
const root = mkdtempSync(join(tmpdir(), "outpost-bench-transfer-"));
const load0 = loadavg();

const dir = join(root, "tree");
const tree = realisticTree(dir, 3000);
// Top up to --mb with large files made of the tree's own bytes (so the signatures see real content).
let bytes = tree.bytes;
const filler = readFileSync(process.execPath).subarray(0, 48 * 1024 * 1024);
mkdirSync(join(dir, "large"), { recursive: true });
let large = 0;
while (bytes < Number(values.mb) * 1024 * 1024) {
  const n = Math.min(filler.length, Number(values.mb) * 1024 * 1024 - bytes);
  writeFileSync(join(dir, "large", `part${large++}.bin`), filler.subarray(0, n));
  bytes += n;
}

const hex = (s: string) => Buffer.from(s).toString("hex");
const files: Record<string, Uint8Array> = {};
if (values.sigs === "small") {
  const sigs = Array.from({ length: 200 }, (_, i) => `B.Sig${i}:0:*:${hex(`outpost-bench-signature-${i}`)}`);
  files["main.ndb"] = new TextEncoder().encode(`${sigs.join("\n")}\n`);
} else {
  const set = realisticSignatureSet(20241, 10_000, 10_000, { prefix: "Bench" });
  files["main.hsb"] = new TextEncoder().encode(set.hsb);
  files["main.ndb"] = new TextEncoder().encode(set.ndb);
}
const stateDir = join(root, "state");
const { hosts, call } = await datasetAHost(files, stateDir, quiet);
const policy = { lookups: false, samples: false };
const services = {
  pipe: new ScanService({ call, policy }),
  shared: new ScanService({ call, policy, transfer: () => hosts.transfer("DatasetA") }),
};

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? Number.NaN;
function scannerCpuMs(): number {
  const pid = hosts.hosts().find((h) => h.group === "scanner")?.pid;
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}
const supervisorCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

type Sample = { wall: number; supervisor: number; scanner: number; files: number; detections: number };
const samples: Record<"pipe" | "shared", Sample[]> = { pipe: [], shared: [] };
// One untimed pass each: page cache and JIT warm for both.
for (const s of Object.values(services)) await s.scanPaths([dir]);
for (let i = 0; i < RUNS; i++) {
  // Alternate which goes first: load drifts within a run less than between runs.
  const order: ("pipe" | "shared")[] = i % 2 === 0 ? ["pipe", "shared"] : ["shared", "pipe"];
  for (const how of order) {
    const s0 = supervisorCpuMs();
    const h0 = scannerCpuMs();
    const t0 = performance.now();
    const r = await services[how].scanPaths([dir]);
    samples[how].push({
      wall: performance.now() - t0,
      supervisor: supervisorCpuMs() - s0,
      scanner: scannerCpuMs() - h0,
      files: r.objects,
      detections: r.detections.length,
    });
  }
}
const region = hosts.transfer("DatasetA");
await hosts.unloadAll();
rmSync(root, { recursive: true, force: true });

const summary = (how: "pipe" | "shared") => ({
  wallMs: Math.round(median(samples[how].map((s) => s.wall))),
  supervisorCpuMs: Math.round(median(samples[how].map((s) => s.supervisor))),
  scannerCpuMs: Math.round(median(samples[how].map((s) => s.scanner))),
  detections: samples[how][0]?.detections ?? 0,
});
const pipe = summary("pipe");
const shared = summary("shared");
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
const result = {
  runs: RUNS,
  sigs: values.sigs,
  tree: { files: tree.files + large, mb: Math.round(bytes / 1048576) },
  loadavg: { start: Math.round(load0[0]! * 100) / 100, end: Math.round(loadavg()[0]! * 100) / 100 },
  pipe,
  shared,
  ratios: {
    wall: ratio(shared.wallMs, pipe.wallMs),
    supervisorCpu: ratio(shared.supervisorCpuMs, pipe.supervisorCpuMs),
    scannerCpu: ratio(shared.scannerCpuMs, pipe.scannerCpuMs),
  },
  region: region
    ? { bytes: region.size, peakInUse: region.counters.peak, fallbacks: region.counters.fallbacks }
    : null,
};
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(
    `agent scan of ${result.tree.files} files, ${result.tree.mb} MB (signatures: ${values.sigs}), medians of ${RUNS}, load ${result.loadavg.start} → ${result.loadavg.end}`,
  );
  for (const [name, s] of [
    ["pipe (baseline)", pipe],
    ["shared region", shared],
  ] as const)
    console.log(
      `  ${name.padEnd(16)} wall ${s.wallMs} ms  CPU supervisor ${s.supervisorCpuMs} ms, scanner ${s.scannerCpuMs} ms  (${s.detections} detections)`,
    );
  console.log(
    `  shared / pipe: wall ${result.ratios.wall}×, supervisor CPU ${result.ratios.supervisorCpu}×, scanner CPU ${result.ratios.scannerCpu}×; region peak ${result.region?.peakInUse} of ${result.region?.bytes} B, ${result.region?.fallbacks} fallbacks`,
  );
}
process.exit(0);
