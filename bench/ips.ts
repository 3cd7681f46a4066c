#!/usr/bin/env bun
/**
 * IPS benchmarks (docs/ips.md, "Measurements"):
 *
 *  1. Matcher rule-count scaling: EPIPS_data rule sets of 100 … 1M generated
 *     rules; compile time, heap, and inspection throughput over the same
 *     packet corpus (the per-byte cost should not grow with the rule count).
 *  2. Packet path, in the same run, on a veth pair between two network
 *     namespaces: request/response latency p50/p99 and bulk TCP throughput
 *     (Mbit/s, packets/s) without the agent, then with the real agent
 *     (`agent run`, prevent mode, 10k rules) queueing the same port. Also the
 *     self-disable reaction time on a forced overrun. Needs root, ip(8),
 *     iptables or nft, libnetfilter-queue1.
 *
 *   bun bench/ips.ts [--sizes 100,10000,100000,1000000] [--round-trips 2000] [--bulk-mb 64] [--no-path] [--json]
 */
import "reflect-metadata";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ControlClient } from "../core/control/client.ts";
import { initKeys, KEY_FILES, loadSigningKeys } from "../core/crypto/keys.ts";
import { packDirectory } from "../core/package/pack.ts";
import { publish } from "../core/repo/publish.ts";
import { IpsEngine } from "../handlers/EPIPS_data/engine.ts";
import { canUseNetns, createNetnsPair, startServers, waitFor } from "../handlers/EPIPS_data/netns.ts";
import { RuleSet } from "../handlers/EPIPS_data/rules/compile.ts";
import { parseRuleFiles } from "../handlers/EPIPS_data/rules/parse.ts";
import type { IpsStatus } from "../handlers/EPIPS_data/service.ts";
import { corpus, generateRules } from "../handlers/EPIPS_data/testutil.ts";
import { percentile } from "../handlers/EPIPS_data/watchdog.ts";

const GROUP = "bench";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "100,1000,10000,100000,1000000" },
    "round-trips": { type: "string", default: "2000" },
    "bulk-mb": { type: "string", default: "64" },
    "no-path": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});

const out: Record<string, unknown> = {};
const say = (s: string) => {
  if (!values.json) console.log(s);
};

// 1. Matcher scaling
const sizes = values.sizes.split(",").map(Number);
const c = corpus();
const scaling: Record<string, unknown>[] = [];
say("## matcher: rule-count scaling (2000 packets, 1.3 MB corpus, 5 passes)");
say("rules      compile_s  heap_MB  unanchored  MB/s    pkt/s      matches");
for (const n of sizes) {
  Bun.gc(true);
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const set = new RuleSet(parseRuleFiles([{ name: "gen.rules", text: generateRules(n) }]).rules);
  const compileS = (performance.now() - t0) / 1000;
  Bun.gc(true);
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 1e6;
  const engine = new IpsEngine(1, set);
  engine.inspect(c.data, c.lens); // warm-up
  const passes = 5;
  const t1 = performance.now();
  let matches = 0;
  for (let p = 0; p < passes; p++) matches += engine.inspect(c.data, c.lens).detections.length;
  const s = (performance.now() - t1) / 1000;
  const row = {
    rules: n,
    compileS: +compileS.toFixed(2),
    heapMb: +heapMb.toFixed(0),
    unanchored: set.unanchored,
    mbPerS: +((c.bytes * passes) / s / 1e6).toFixed(1),
    pktPerS: Math.round((c.lens.length * passes) / s),
    matches: matches / passes,
  };
  scaling.push(row);
  say(
    `${String(n).padEnd(10)} ${String(row.compileS).padEnd(10)} ${String(row.heapMb).padEnd(8)} ${String(row.unanchored).padEnd(11)} ${String(row.mbPerS).padEnd(7)} ${String(row.pktPerS).padEnd(10)} ${row.matches}`,
  );
}
out.scaling = scaling;

// 2. Packet path
if (!values["no-path"] && canUseNetns()) {
  const TCP = 8080;
  const UDP = 5353;
  const SINK = 9000;
  const net = createNetnsPair();
  const dir = mkdtempSync(join(tmpdir(), "outpost-ips-bench-"));
  const keysDir = join(dir, "keys");
  await initKeys(keysDir, { now: new Date(Date.now() - 3600_000) });
  const repo = join(dir, "repo");
  mkdirSync(join(dir, "src"), { recursive: true });
  const server = await startServers(net, TCP, UDP, SINK);
  let agent: ReturnType<typeof Bun.spawn> | undefined;
  try {
    const roundTrips = Number(values["round-trips"]);
    const bulkMb = Number(values["bulk-mb"]);
    const measure = async () => {
      const rt = await net.client<{ ms: number[] }>(["tcp-bench", net.addrA, TCP, roundTrips, 200], 300_000);
      const bulk = await net.client<{ ms: number; bytes: number }>(
        ["tcp-bulk", net.addrA, SINK, bulkMb],
        300_000,
      );
      return {
        p50: +percentile(rt.ms, 50).toFixed(3),
        p99: +percentile(rt.ms, 99).toFixed(3),
        rps: Math.round(roundTrips / (rt.ms.reduce((a, b) => a + b, 0) / 1000)),
        mbit: +((bulk.bytes * 8) / (bulk.ms / 1000) / 1e6).toFixed(0),
        bulkMs: bulk.ms,
      };
    };
    say("\n## packet path (veth between two netns; request/response 200 B; bulk TCP)");
    const base = await measure();
    writeFileSync(join(dir, "src", "gen.rules"), generateRules(10_000));
    const keys = await loadSigningKeys(keysDir);
    const pkg = await packDirectory({ type: "EPIPS_data", version: 1, keys, dir: join(dir, "src") });
    await publish({ repo, group: GROUP, keys: keysDir, packageBytes: pkg });
    const stateDir = join(dir, "state");
    const cfg = join(dir, "agent.json");
    const config = (queueMaxLen: number) =>
      writeFileSync(
        cfg,
        JSON.stringify({
          stateDir,
          update: { repo, group: GROUP, trust: join(keysDir, KEY_FILES.rootCert) },
          ips: {
            enabled: true,
            mode: "prevent",
            ports: { outbound: { tcp: [TCP, SINK], udp: [UDP] } },
            queueMaxLen,
            selfDisable: { checkIntervalMs: 100, verdictP99Ms: 10_000, minSamples: 1_000_000 },
          },
        }),
      );
    config(4096);
    const AGENT = join(import.meta.dir, "../bin/agent.ts");
    Bun.spawnSync([process.execPath, AGENT, "update", "--once", "--config", cfg], {
      env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
    });
    agent = net.spawn(net.b, [process.execPath, AGENT, "run", "--config", cfg]);
    const client = await waitFor("control plane", () => ControlClient.fromStateDir(stateDir), 30_000);
    const ips = () => client.request("GET", "/v1/ips/status") as Promise<IpsStatus>;
    await waitFor("ips active", async () => (await ips()).phase === "active", 30_000);
    const before = (await ips()).counters.packets;
    const t0 = performance.now();
    const withQ = await measure();
    const s = await ips();
    const pktPerS = Math.round((s.counters.packets - before) / ((performance.now() - t0) / 1000));
    const bulkPackets = s.counters.packets - before;
    say("                 p50_ms   p99_ms   req/s    bulk_Mbit/s");
    say(
      `without queue    ${String(base.p50).padEnd(8)} ${String(base.p99).padEnd(8)} ${String(base.rps).padEnd(8)} ${base.mbit}`,
    );
    say(
      `with queue       ${String(withQ.p50).padEnd(8)} ${String(withQ.p99).padEnd(8)} ${String(withQ.rps).padEnd(8)} ${withQ.mbit}`,
    );
    say(
      `added latency    p50 +${(withQ.p50 - base.p50).toFixed(3)} ms, p99 +${(withQ.p99 - base.p99).toFixed(3)} ms; throughput ratio ${(withQ.mbit / base.mbit).toFixed(3)}; queued ${bulkPackets} packets at ~${pktPerS} pkt/s average; supervisor verdict latency p50 ${s.latencyMs.p50} ms p99 ${s.latencyMs.p99} ms`,
    );
    out.path = {
      base,
      withQueue: withQ,
      verdictLatencyMs: s.latencyMs,
      queuedPackets: bulkPackets,
      pktPerS,
      counters: s.counters,
    };

    // Self-disable reaction: small queue, UDP flood; time from flood start to rules gone.
    agent.kill("SIGTERM");
    await agent.exited;
    config(32);
    agent = net.spawn(net.b, [process.execPath, AGENT, "run", "--config", cfg]);
    const c2 = await waitFor("control plane", () => ControlClient.fromStateDir(stateDir), 30_000);
    await waitFor(
      "ips active",
      async () => ((await c2.request("GET", "/v1/ips/status")) as IpsStatus).phase === "active",
      30_000,
    );
    const tf = performance.now();
    const flood = net.client<{ sent: number }>(["udp-flood", net.addrA, UDP, 3000, 200]);
    const tripped = await waitFor(
      "self-disable",
      async () => {
        const x = (await c2.request("GET", "/v1/ips/status")) as IpsStatus;
        return x.phase === "disabled-by-safety" ? x : null;
      },
      30_000,
    );
    const reactionMs = performance.now() - tf;
    await flood;
    say(
      `\nself-disable on forced overrun: ${tripped.safety?.code} observed ${reactionMs.toFixed(0)} ms after the flood started (client start-up included; check interval 100 ms); queue unbound ${tripped.lastTripMs} ms after the decision, rules removed after ${tripped.lastRulesRemovedMs} ms`,
    );
    out.selfDisable = {
      code: tripped.safety?.code,
      observedMs: Math.round(reactionMs),
      offMs: tripped.lastTripMs,
    };
  } finally {
    agent?.kill("SIGTERM");
    await agent?.exited;
    server.kill("SIGKILL");
    net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
} else if (!values["no-path"]) {
  say("\n(packet path skipped: needs root and ip netns)");
}
if (values.json) console.log(JSON.stringify(out, null, 2));
