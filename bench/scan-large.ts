#!/usr/bin/env bun
/**
 * One large file through `agent scan`: a sparse file (default 2 GiB) with a
 * signature instance near its end, scanned through the sandboxed scanner
 * host (8 MiB chunks, spilled and mapped). Before the host's watchdog
 * counted only anonymous memory, the mapped spill file's pages got the
 * scanner killed at its RSS limit. Reports wall time, whether the detection
 * was found, and the peak RSS of the command tree.
 *
 *   bun bench/scan-large.ts [--gib 2] [--json]
 */
import "reflect-metadata";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initKeys } from "../core/crypto/keys.ts";
import { updateOnceArgv } from "./update-once.ts";

const { values } = parseArgs({
  options: { gib: { type: "string", default: "2" }, json: { type: "boolean" } },
});
const ROOT = join(import.meta.dir, "..");
const bun = process.execPath;
const work = mkdtempSync(join(tmpdir(), "outpost-bench-large-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const env = { ...process.env, OUTPOST_LOG_QUIET: "1" };
const sh = (cmd: string[], ok = [0]) => {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", env });
  if (!ok.includes(r.exitCode)) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr}`);
  return { out: r.stdout.toString(), code: r.exitCode, rssKb: Number(r.resourceUsage?.maxRSS ?? 0) / 1024 };
};

const keys = join(work, "keys");
await initKeys(keys, { now: new Date(Date.now() - 86400_000) });
writeFileSync(
  join(work, "large.ndb"),
  `Bench.Large.Tail:0:*:${Buffer.from("outpost-large-file-tail").toString("hex")}\n`,
);
const cc = [bun, join(ROOT, "bin/contentctl.ts")];
sh([
  ...cc,
  "datasets",
  "pack",
  join(work, "large.ndb"),
  "--version",
  "1",
  "--keys",
  keys,
  "--out",
  join(work, "d.tar"),
]);
sh([...cc, "publish", "--repo", join(work, "repo"), "--group", "g", "--keys", keys, join(work, "d.tar")]);
const state = join(work, "state");
const agent = [bun, join(ROOT, "bin/agent.ts")];
sh(updateOnceArgv(agent, { repo: join(work, "repo"), group: "g", keys, state }));

const size = Math.round(Number(values.gib) * 1024 ** 3);
const file = join(work, "large.bin");
const fd = openSync(file, "w");
writeSync(fd, Buffer.from("outpost-large-file-tail"), 0, 23, size - 4096);
writeSync(fd, Buffer.alloc(1), 0, 1, size - 1);
closeSync(fd);

const t = performance.now();
const r = sh([...agent, "scan", "--state", state, "--json", "--quiet", file], [0, 1, 2]);
const ms = performance.now() - t;
const report = JSON.parse(r.out) as { detections: { name: string }[]; errors: unknown[] };
const result = {
  bytes: size,
  wallMs: Math.round(ms),
  mbPerSecond: Math.round(size / 1e6 / (ms / 1000)),
  exitCode: r.code,
  found: report.detections.some((d) => d.name === "Bench.Large.Tail"),
  errors: report.errors,
  peakRssMb: Math.round(r.rssKb / 1024),
};
if (values.json) console.log(JSON.stringify(result));
else
  console.log(
    `scan-large: ${size} bytes in ${result.wallMs} ms (${result.mbPerSecond} MB/s), exit ${r.code}, tail detection ${result.found ? "found" : "MISSED"}, peak RSS ${result.peakRssMb} MB, errors ${JSON.stringify(result.errors)}`,
  );
