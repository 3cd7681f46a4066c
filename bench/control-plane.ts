#!/usr/bin/env bun
/**
 * Control plane throughput: requests/s and p99 latency of `GET /v1/status`
 * on the real control plane (token check, Host check, metrics, routing,
 * status cache) in front of a real Agent with Hmpa_data content installed,
 * as a ratio to a bare `Bun.serve` answering the same JSON bytes, measured
 * in the same run under the same load generator. Goal: ratio ≥ 0.8.
 *
 * Also measured: the same route through Hono alone (what the native
 * fast path buys), with the status cache off (what caching buys), and the
 * cost of building the status itself.
 *
 *   bun bench/control-plane.ts [--duration 5] [--connections 32] [--rounds 3]
 *                              [--thumbprints 100000] [--loadgen wrk|bun] [--json]
 *
 * Load generator: `wrk` (Debian package `wrk`), one thread, so on a
 * two-core machine the generator and the server each get a core. Without
 * wrk (or with --loadgen bun) a small concurrent Bun client runs in a
 * separate process instead; its own overhead is higher, so its absolute
 * numbers are lower, but both servers face the same client.
 * Servers alternate round by round; the ratio is the median of the per-round
 * ratios. On a machine busy with other work, run it under `nice -n -10`
 * (both servers and wrk inherit it) or the rounds scatter widely.
 */
import "reflect-metadata";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent } from "../core/agent/runtime.ts";
import { parseConfig } from "../core/config.ts";
import { buildControlApp, type ControlPlane, startControlPlane } from "../core/control/server.ts";
import { initKeys, KEY_FILES, loadSigningKeys } from "../core/crypto/keys.ts";
import { log } from "../core/log.ts";
import { packDirectory } from "../core/package/pack.ts";
import { publish } from "../core/repo/publish.ts";
import { buildAllowlist } from "../handlers/Hmpa_data/writer.ts";
import { defaultRegistry } from "../handlers/index.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    rounds: { type: "string", default: "3" },
    thumbprints: { type: "string", default: "100000" },
    loadgen: { type: "string" },
    json: { type: "boolean" },
    // Internal: this file re-runs itself as the Bun load generator.
    "loadgen-worker": { type: "string" },
    token: { type: "string" },
  },
});

interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);

if (values["loadgen-worker"]) {
  console.log(
    JSON.stringify(await bunLoad(values["loadgen-worker"], values.token ?? "", DURATION, CONNECTIONS)),
  );
  process.exit(0);
}

/** The fallback generator: N concurrent keep-alive loops; latency per request. */
async function bunLoad(
  url: string,
  token: string,
  seconds: number,
  connections: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const headers = { authorization: `Bearer ${token}` };
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const res = await fetch(url, { headers });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]!;
  return {
    rps: latencies.length / seconds,
    p50Ms: pct(50),
    p99Ms: pct(99),
    requests: latencies.length,
    errors,
  };
}

const WRK_REPORT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nWRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
`;

function hasWrk(): boolean {
  return Bun.which("wrk") !== null;
}

async function runLoad(url: string, token: string, seconds: number, gen: "wrk" | "bun", dir: string) {
  if (gen === "wrk") {
    const script = join(dir, "report.lua");
    writeFileSync(script, WRK_REPORT);
    const args = ["wrk", "-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "-s", script];
    args.push("-H", `Authorization: Bearer ${token}`, url);
    const proc = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const line = /WRKJSON (\{.*\})/.exec(out)?.[1];
    if (code !== 0 || !line) throw new Error(`wrk failed (${code}): ${out}`);
    const r = JSON.parse(line) as Record<string, number>;
    return {
      rps: r.requests! / (r.duration_us! / 1e6),
      p50Ms: r.p50_us! / 1000,
      p99Ms: r.p99_us! / 1000,
      requests: r.requests!,
      errors: r.errors! + r.non2xx!,
    } satisfies LoadResult;
  }
  const proc = Bun.spawn(
    [
      process.execPath,
      import.meta.path,
      "--loadgen-worker",
      url,
      "--token",
      token,
      "--duration",
      String(seconds),
      "--connections",
      String(CONNECTIONS),
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`bun load generator exited ${code}`);
  return JSON.parse(out) as LoadResult;
}

/** A real agent on a temp dir with a Hmpa_data allowlist installed through a real update cycle. */
async function realAgent(dir: string, thumbprints: number): Promise<Agent> {
  const keysDir = join(dir, "keys");
  await initKeys(keysDir);
  const keys = await loadSigningKeys(keysDir);
  const src = join(dir, "src");
  mkdirSync(src);
  const list = Array.from(
    { length: thumbprints },
    (_, i) => `StackPivot:${i.toString(16).padStart(16, "0")}`,
  );
  writeFileSync(join(src, "allowlist.bin"), buildAllowlist(list));
  const repo = join(dir, "repo");
  mkdirSync(repo);
  const pkg = await packDirectory({ type: "Hmpa_data", version: 1, keys, dir: src });
  await publish({ repo, group: "bench", keys: keysDir, packageBytes: pkg });
  const agent = new Agent({
    config: parseConfig({
      stateDir: join(dir, "state"),
      update: { repo, group: "bench", trust: join(keysDir, KEY_FILES.rootCert) },
    }),
    registry: defaultRegistry(),
  });
  await agent.start();
  const report = await agent.update();
  if (!report.ok || report.installed.length !== 1)
    throw new Error(`bench setup: update failed ${JSON.stringify(report)}`);
  return agent;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number) => Math.round(x * 10) / 10;

log.setStderr(false);
const dir = mkdtempSync(join(tmpdir(), "outpost-bench-cp-"));
const planes: ControlPlane[] = [];
let bare: ReturnType<typeof Bun.serve> | undefined;
try {
  const gen: "wrk" | "bun" =
    values.loadgen === "bun" || values.loadgen === "wrk" ? values.loadgen : hasWrk() ? "wrk" : "bun";
  if (gen === "wrk" && !hasWrk())
    throw new Error("--loadgen wrk: wrk not installed (apt-get install -y wrk)");
  const agent = await realAgent(dir, Number(values.thumbprints));

  // Building the status, for scale: what every uncached request pays.
  const t = performance.now();
  const N = 2000;
  for (let i = 0; i < N; i++) JSON.stringify(agent.status());
  const statusBuildUs = ((performance.now() - t) / N) * 1000;

  const cached = await startControlPlane({ api: agent, stateDir: join(dir, "state"), events: agent.events });
  planes.push(cached);
  // A second plane on the same agent with the cache off (its own state files, same agent).
  const uncachedDir = join(dir, "uncached");
  mkdirSync(uncachedDir);
  const uncached = await startControlPlane({
    api: agent,
    stateDir: uncachedDir,
    events: agent.events,
    statusMaxAgeMs: 0,
  });
  planes.push(uncached);
  // The same app served by Hono alone (no native fast path), cache on: what the fast path adds.
  const honoOnly = buildControlApp(agent, { token: cached.token, events: agent.events });
  const honoServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: honoOnly.app.fetch });

  const statusJson = await (
    await fetch(`${cached.url}/v1/status`, { headers: { authorization: `Bearer ${cached.token}` } })
  ).text();
  const parsed = JSON.parse(statusJson) as { content: { type: string; handlerState: string }[] };
  if (parsed.content.find((c) => c.type === "Hmpa_data")?.handlerState !== "loaded")
    throw new Error("bench setup: Hmpa_data not loaded");
  // The baseline answers the very same bytes with the same content type.
  bare = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(statusJson, { headers: { "content-type": "application/json" } }),
  });

  const targets = {
    bare: { url: `http://127.0.0.1:${bare.port}/v1/status`, token: cached.token },
    ours: { url: `${cached.url}/v1/status`, token: cached.token },
    uncached: { url: `${uncached.url}/v1/status`, token: uncached.token },
    honoOnly: { url: `http://127.0.0.1:${honoServer.port}/v1/status`, token: cached.token },
  };
  const results: Record<keyof typeof targets, LoadResult[]> = {
    bare: [],
    ours: [],
    uncached: [],
    honoOnly: [],
  };
  // Warm-up: JIT both paths before measuring.
  for (const target of Object.values(targets)) await runLoad(target.url, target.token, 1, gen, dir);
  const rounds = Number(values.rounds);
  // Each round measures bare and ours back to back (order alternating), so load from anything else
  // on the machine hits both sides of a pair alike; the ratio is the median of the per-round ratios.
  const pairRatios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order =
      r % 2 === 0
        ? (["bare", "ours", "honoOnly", "uncached"] as const)
        : (["ours", "bare", "honoOnly", "uncached"] as const);
    for (const name of order) {
      const res = await runLoad(targets[name].url, targets[name].token, DURATION, gen, dir);
      if (res.errors > 0) throw new Error(`${name}: ${res.errors} failed requests`);
      results[name].push(res);
    }
    pairRatios.push(results.ours[r]!.rps / results.bare[r]!.rps);
  }
  const summary = (name: keyof typeof targets) => ({
    rps: Math.round(median(results[name].map((x) => x.rps))),
    p50Ms: Math.round(median(results[name].map((x) => x.p50Ms)) * 1000) / 1000,
    p99Ms: Math.round(median(results[name].map((x) => x.p99Ms)) * 1000) / 1000,
  });
  const out = {
    loadgen: gen,
    connections: CONNECTIONS,
    durationSeconds: DURATION,
    rounds,
    statusBytes: statusJson.length,
    statusBuildUs: round1(statusBuildUs),
    bare: summary("bare"),
    ours: summary("ours"),
    uncached: summary("uncached"),
    honoOnly: summary("honoOnly"),
    ratio: 0,
    pairRatios: [] as number[],
    p99PerRound: { bare: [] as number[], ours: [] as number[] },
    p99Ratio: 0,
    uncachedRatio: 0,
    honoOnlyRatio: 0,
    goal: 0.8,
  };
  out.ratio = Math.round(median(pairRatios) * 100) / 100;
  out.uncachedRatio = Math.round((out.uncached.rps / out.bare.rps) * 100) / 100;
  out.honoOnlyRatio = Math.round((out.honoOnly.rps / out.bare.rps) * 100) / 100;
  out.p99Ratio = Math.round((out.bare.p99Ms / out.ours.p99Ms) * 100) / 100;
  out.pairRatios = pairRatios.map((x) => Math.round(x * 100) / 100);
  out.p99PerRound = {
    bare: results.bare.map((x) => Math.round(x.p99Ms * 100) / 100),
    ours: results.ours.map((x) => Math.round(x.p99Ms * 100) / 100),
  };

  if (values.json) console.log(JSON.stringify(out));
  else {
    console.log(
      `GET /v1/status, ${gen}${gen === "wrk" ? " -t1" : " (Bun client)"} -c${CONNECTIONS}, ${DURATION}s × ${rounds} rounds (medians)`,
    );
    console.log(
      `  status payload                 ${out.statusBytes} bytes; building it costs ${out.statusBuildUs} µs`,
    );
    const row = (label: string, s: { rps: number; p50Ms: number; p99Ms: number }) =>
      console.log(
        `  ${label.padEnd(30)} ${String(s.rps).padStart(7)} req/s   p50 ${s.p50Ms} ms   p99 ${s.p99Ms} ms`,
      );
    row("bare Bun.serve (same JSON)", out.bare);
    row("control plane", out.ours);
    row("control plane, no fast path", out.honoOnly);
    row("control plane, cache off", out.uncached);
    console.log(
      `  ratio                          ${out.ratio}× bare throughput (goal ≥ ${out.goal}; rounds ${out.pairRatios.join(", ")})`,
    );
    console.log(
      `  p99 ratio                      ${out.p99Ratio} (bare p99 / ours; per round, ms: bare ${out.p99PerRound.bare.join(", ")}; ours ${out.p99PerRound.ours.join(", ")})`,
    );
    console.log(`  ratio, no fast path            ${out.honoOnlyRatio}×`);
    console.log(`  ratio, cache off               ${out.uncachedRatio}×`);
  }
  honoServer.stop(true);
  honoOnly.close();
  await Promise.all(planes.map((p) => p.stop()));
  planes.length = 0;
  await agent.stop();
} finally {
  bare?.stop(true);
  await Promise.all(planes.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
}
