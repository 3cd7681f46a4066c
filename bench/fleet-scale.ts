/**
 * The fleet service at scale (issue 13 item 7; not part of `npm test`):
 * 2 `contentctl serve --release --db postgres://…` replicas on one
 * throwaway PostgreSQL cluster, a stock nginx in front (static repository
 * files as the package origin, /fleet/ and /console proxied to the
 * replicas), and a fleet of simulated agents polling hourly with ±10 %
 * jitter and heartbeating after each poll, in compressed time.
 *
 *   nice bun bench/fleet-scale.ts                    # 1M agents, 120 s of load per phase
 *   AGENTS=100000 LOAD_SECONDS=60 nice bun bench/fleet-scale.ts
 *
 * How the 1M fleet is built: every agent's row is seeded by SQL (one
 * INSERT … SELECT generate_series, group shares 1/4/10/20/30/35 %), so the
 * database holds the whole fleet; then the HTTP phase replays the fleet's
 * hour in schedule order (the hourly ±10 % schedule of N agents is a
 * random order of the agents) as fast as the stack answers, each agent
 * event being a conditional GET of its group index (304) and a heartbeat
 * POST (an upsert into the 1M-row tables). The run reports how much of the
 * simulated hour the wall-clock phase covered.
 *
 * Reported: req/s and p50/p99 per request kind, the database's bytes per
 * agent, CPU seconds per request and the CPU cores 1k agents need at the
 * hourly rate, the planner tick time with a release live in all six
 * groups; and the same request mix against a bare Bun.serve (the
 * baseline: no database, no validation, no proxy) in the same run.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../core/crypto/digest.ts";
import { initKeys, loadSigningKeys } from "../core/crypto/keys.ts";
import { packDirectory } from "../core/package/pack.ts";
import { publish } from "../core/repo/publish.ts";
import { loadReleaseConfig } from "../fleet/config.ts";
import { openFleetDb } from "../fleet/db/index.ts";
import { ReleaseEngine } from "../fleet/engine.ts";
import { freePort, startPostgres } from "../plugins/sinks/testutil/servers.ts";
import { NGINX } from "./fleet/nginx.ts";

const AGENTS = Number(process.env.AGENTS ?? 1_000_000);
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? 120);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 48);
const ROOT = join(import.meta.dir, "..");
const TOKEN = "fleet-scale-bench-token-0123456789";
const GROUPS: [string, number][] = [
  ["eng-test", 1],
  ["internal", 4],
  ["public-1", 10],
  ["public-2", 20],
  ["public-3", 30],
  ["public-4", 35],
];
const groupOf = (i: number) => {
  let p = i % 100;
  for (const [g, share] of GROUPS) {
    if (p < share) return g;
    p -= share;
  }
  return "public-4";
};

const log = (msg: string) => process.stderr.write(`[fleet-scale] ${msg}\n`);

// ------------------------------------------------------------------ CPU accounting

const TICK = 100; // USER_HZ
function cpuOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / TICK; // utime + stime
  } catch {
    return 0;
  }
}
/** CPU seconds of a process and every descendant alive now (PostgreSQL backends, nginx workers). */
function treeCpu(root: number): number {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(f.slice(f.lastIndexOf(")") + 2).split(" ")[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {}
  }
  let sum = 0;
  const walk = (p: number) => {
    sum += cpuOf(p);
    for (const k of kids.get(p) ?? []) walk(k);
  };
  walk(root);
  return sum;
}

// ------------------------------------------------------------------ load generator

interface Phase {
  wallSeconds: number;
  events: number;
  requests: number;
  errors: number;
  reqPerSecond: number;
  getP50: number;
  getP99: number;
  postP50: number;
  postP99: number;
  allP99: number;
}

const pct = (xs: Float64Array, n: number, p: number) => {
  const s = xs.subarray(0, n).slice().sort();
  return n ? Number(s[Math.min(n - 1, Math.floor(p * n))]!.toFixed(2)) : 0;
};

function heartbeatBody(i: number, group: string): string {
  return `{"schema":1,"agentId":"agent-${String(i).padStart(7, "0")}","tenant":"acme","group":"${group}","agentVersion":"1.0.0","sentAt":"${new Date().toISOString()}","health":"green","content":[{"type":"TestText","version":2,"handlerState":"loaded","badVersions":[],"crashes":0,"rollbacks":[]}],"rejected":0,"lastRejections":[]}`;
}

/** Replays agents in a random (schedule) order for `seconds`; each event = GET index (conditional) + POST heartbeat. */
async function load(base: string, seconds: number, etags: Map<string, string>): Promise<Phase> {
  const cap = 4_000_000;
  const gets = new Float64Array(cap);
  const posts = new Float64Array(cap);
  let ng = 0;
  let np = 0;
  let errors = 0;
  let events = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  // A random permutation step: agents in an order that is the hour's schedule under uniform jitter.
  const stride = 2_654_435_761 % AGENTS || 1;
  let cursor = 0;
  const next = () => {
    cursor = (cursor + stride) % AGENTS;
    return cursor;
  };
  const worker = async () => {
    while (performance.now() < end) {
      const i = next();
      const group = groupOf(i);
      events++;
      let t = performance.now();
      try {
        const r = await fetch(`${base}groups/${group}/index.json`, {
          headers: { "if-none-match": etags.get(group) ?? "" },
        });
        await r.arrayBuffer();
        if (r.status !== 304 && r.status !== 200) {
          if (errors++ === 0) log(`index answered ${r.status}`);
        }
      } catch {
        errors++;
      }
      gets[ng++ % cap] = performance.now() - t;
      t = performance.now();
      try {
        const r = await fetch(`${base}fleet/heartbeat`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
          body: heartbeatBody(i, group),
        });
        const body = await r.text();
        if (r.status !== 204) {
          if (errors++ === 0) log(`heartbeat answered ${r.status}: ${body.slice(0, 200)}`);
        }
      } catch {
        errors++;
      }
      posts[np++ % cap] = performance.now() - t;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const wall = (performance.now() - start) / 1000;
  const all = new Float64Array(ng + np);
  all.set(gets.subarray(0, ng));
  all.set(posts.subarray(0, np), ng);
  return {
    wallSeconds: Number(wall.toFixed(1)),
    events,
    requests: ng + np,
    errors,
    reqPerSecond: Math.round((ng + np) / wall),
    getP50: pct(gets, ng, 0.5),
    getP99: pct(gets, ng, 0.99),
    postP50: pct(posts, np, 0.5),
    postP99: pct(posts, np, 0.99),
    allP99: pct(all, all.length, 0.99),
  };
}

// ------------------------------------------------------------------ the stack

async function serveReplica(
  repo: string,
  cfg: string,
  url: string,
): Promise<{ port: number; proc: Bun.Subprocess }> {
  const port = await freePort();
  const proc = Bun.spawn(
    [
      process.execPath,
      join(ROOT, "bin/contentctl.ts"),
      "serve",
      "--repo",
      repo,
      "--port",
      String(port),
    ].concat(["--release", cfg, "--db", url]),
    { cwd: ROOT, env: { ...process.env, OUTPOST_LOG_QUIET: "1" }, stdout: "pipe", stderr: "inherit" },
  );
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  if (!value) throw new Error("replica exited");
  reader.releaseLock();
  return { port, proc };
}

async function startProxy(dir: string, repo: string, replicas: number[]) {
  if (!NGINX) throw new Error("nginx is not installed");
  const port = await freePort();
  mkdirSync(join(dir, "logs"), { recursive: true });
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body;
  proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fastcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi;
  scgi_temp_path ${dir}/tmp-scgi;
  keepalive_requests 1000000;
  upstream fleet { least_conn; ${replicas.map((p) => `server 127.0.0.1:${p};`).join(" ")} keepalive 128; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${repo};
    etag on;
    location ~ /\\. { return 404; }
    location /fleet/ { proxy_pass http://fleet; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location /console { proxy_pass http://fleet; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const proc = Bun.spawn([NGINX, "-c", join(dir, "nginx.conf"), "-p", dir], {
    stdout: "ignore",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; ; i++) {
    try {
      await fetch(url);
      break;
    } catch {
      if (i > 200) throw new Error("nginx did not start");
      await Bun.sleep(25);
    }
  }
  return { url, proc };
}

/** The baseline: the same answers (304 / 204 after reading the body), nothing behind them. */
function bareScript(port: number): string {
  return `Bun.serve({ hostname: "127.0.0.1", port: ${port}, async fetch(req) {
    if (req.method === "POST") { await req.arrayBuffer(); return new Response(null, { status: 204 }); }
    return new Response(null, { status: 304, headers: { etag: '"x"' } });
  } }); console.log("up");`;
}

// ------------------------------------------------------------------ main

/** Keys, a repository folder and a packer: the vendor side, in a temp dir. */
async function makeVendor() {
  const root = mkdtempSync(join(tmpdir(), "outpost-fleet-scale-"));
  chmodSync(root, 0o755); // nginx's unprivileged workers serve the repository from here
  const keysDir = join(root, "keys");
  const repo = join(root, "repo");
  mkdirSync(repo);
  await initKeys(keysDir, { now: new Date(Date.now() - 24 * 3600_000) });
  const keys = await loadSigningKeys(keysDir);
  return {
    root,
    keysDir,
    repo,
    async pack(type: string, version: number, files: Record<string, string>, opts: { now?: Date } = {}) {
      const dir = join(root, `src-${version}`);
      mkdirSync(dir, { recursive: true });
      for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
      return packDirectory({ type, version, keys, dir, now: opts.now });
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

const vendor = await makeVendor();
const pg = await startPostgres();
const cleanup: (() => void | Promise<void>)[] = [() => pg.destroy(), () => vendor.cleanup()];
try {
  const dir = join(vendor.root, "bench");
  mkdirSync(dir, { recursive: true });
  const old = new Date(Date.now() - 3600_000);
  const v1 = await vendor.pack("TestText", 1, { "data.txt": "one" }, { now: old });
  for (const [g] of GROUPS)
    await publish({ repo: vendor.repo, group: g, keys: vendor.keysDir, packageBytes: v1, now: old });
  const cfg = join(dir, "release.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: "state",
      groups: GROUPS.map(([name]) => ({ name, promote: "manual", soakMinutes: 60 })),
      fleet: { tenants: { acme: { tokenSha256: sha256Hex(new TextEncoder().encode(TOKEN)) } } },
      tickSeconds: 60,
    }),
  );
  const url = pg.url;
  const db = await openFleetDb({ url, stateDir: join(dir, "state"), poolSize: 4 });
  cleanup.unshift(() => db.close());

  // The whole fleet in the database: every agent on v1, last heard within the hour.
  const now = Date.now();
  let t0 = performance.now();
  const shareCase = `CASE ${(() => {
    let acc = 0;
    return GROUPS.map(([g, s]) => {
      acc += s;
      return `WHEN g % 100 < ${acc} THEN '${g}'`;
    }).join(" ");
  })()} END`;
  await db.driver.run(
    `INSERT INTO agents (agent_key, tenant, grp, received_at, health, rejected, agent_version)
     SELECT 'acme/agent-' || lpad(g::text, 7, '0'), 'acme', ${shareCase}, ${now} - (g::bigint * 7919 % 3600000), 'green', 0, '1.0.0'
       FROM generate_series(0, ${AGENTS - 1}) AS g`,
  );
  await db.driver.run(
    `INSERT INTO agent_content (agent_key, type, grp, received_at, health, version, state, crashes, bad, rolled_back_from)
     SELECT agent_key, 'TestText', grp, received_at, health, 1, 'loaded', 0, '', '' FROM agents`,
  );
  await db.driver.run("ANALYZE");
  const seedSeconds = (performance.now() - t0) / 1000;
  log(`seeded ${AGENTS} agents in ${seedSeconds.toFixed(1)} s`);

  // A release live in all six groups: the planner's worst case (six aggregates per tick).
  const engine = new ReleaseEngine({ config: loadReleaseConfig(cfg), db });
  const pkg = join(dir, "TestText-2.tar");
  writeFileSync(pkg, await vendor.pack("TestText", 2, { "data.txt": "two" }));
  await engine.start({ type: "TestText", version: 2, packageFile: pkg });
  for (let i = 1; i < GROUPS.length; i++) await engine.promote({ force: true });

  const tickTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    t0 = performance.now();
    await engine.tick();
    tickTimes.push(performance.now() - t0);
  }
  const tickIdle = tickTimes.sort((a, b) => a - b)[2]!;
  log(`planner tick with ${AGENTS} agents, 6 live groups: median ${tickIdle.toFixed(0)} ms`);
  const sizes = (
    await db.driver.all(
      `SELECT pg_database_size(current_database()) AS db, pg_total_relation_size('agents') AS agents,
              pg_total_relation_size('agent_content') AS content`,
    )
  )[0]!;

  // The stack: two replicas, nginx in front.
  const replicas = [await serveReplica(vendor.repo, cfg, url), await serveReplica(vendor.repo, cfg, url)];
  cleanup.unshift(() => {
    for (const r of replicas) r.proc.kill("SIGTERM");
  });
  const proxy = await startProxy(
    dir,
    vendor.repo,
    replicas.map((r) => r.port),
  );
  cleanup.unshift(() => {
    proxy.proc.kill("SIGQUIT");
  });
  const etags = new Map<string, string>();
  for (const [g] of GROUPS)
    etags.set(g, (await fetch(`${proxy.url}groups/${g}/index.json`)).headers.get("etag") ?? "");

  // The postmaster is the parent of any backend: its tree is all of PostgreSQL's CPU.
  const backend = Number((await db.driver.all("SELECT pg_backend_pid() AS pid"))[0]!.pid);
  const stat = readFileSync(`/proc/${backend}/stat`, "utf8");
  const pgPid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  const cpu = () => ({
    replicas: replicas.reduce((s, r) => s + cpuOf(r.proc.pid), 0),
    postgres: treeCpu(pgPid),
    nginx: treeCpu(proxy.proc.pid),
  });

  log(`fleet phase: ${LOAD_SECONDS} s through nginx → 2 replicas → PostgreSQL`);
  const c0 = cpu();
  const fleet = await load(proxy.url, LOAD_SECONDS, etags);
  const c1 = cpu();
  const cpuFleet = {
    replicas: c1.replicas - c0.replicas,
    postgres: c1.postgres - c0.postgres,
    nginx: c1.nginx - c0.nginx,
  };
  const cpuTotal = cpuFleet.replicas + cpuFleet.postgres + cpuFleet.nginx;
  // Right after the load: the gate aggregates alone (no lock), then a whole tick (which may wait for a
  // replica's own tick under the planner lock), then the aggregates again once autovacuum's work is done.
  const aggregates = async () => {
    const state = await db.releases.load();
    const t = performance.now();
    await engine.healthSnapshot(state, db.fleet, new Date());
    return performance.now() - t;
  };
  const aggregatesAfterLoad = await aggregates();
  t0 = performance.now();
  await engine.tick();
  const tickAfter = performance.now() - t0;
  await db.driver.run("VACUUM ANALYZE agents");
  await db.driver.run("VACUUM ANALYZE agent_content");
  const aggregatesAfterVacuum = await aggregates();
  const agentsAfter = await db.fleet.count();

  log(`baseline phase: ${LOAD_SECONDS} s against a bare Bun.serve`);
  const barePort = await freePort();
  const bare = Bun.spawn([process.execPath, "-e", bareScript(barePort)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  cleanup.unshift(() => {
    bare.kill("SIGTERM");
  });
  await (bare.stdout as ReadableStream<Uint8Array>).getReader().read();
  const b0 = cpuOf(bare.pid);
  const baseline = await load(`http://127.0.0.1:${barePort}/`, LOAD_SECONDS, etags);
  const cpuBare = cpuOf(bare.pid) - b0;

  const hourlyReqPerSecond = (AGENTS * 2) / 3600;
  const cpuPerReq = cpuTotal / fleet.requests;
  const result = {
    agents: AGENTS,
    agentsInDbAfter: agentsAfter,
    seedSeconds: Number(seedSeconds.toFixed(1)),
    simulatedHourCovered: Number((fleet.events / AGENTS).toFixed(3)),
    compression: Number((((fleet.events / AGENTS) * 3600) / fleet.wallSeconds).toFixed(1)),
    fleet,
    baseline,
    cpuSeconds: { ...cpuFleet, total: Number(cpuTotal.toFixed(1)), bare: Number(cpuBare.toFixed(1)) },
    cpuMsPerRequest: Number((cpuPerReq * 1000).toFixed(3)),
    bareCpuMsPerRequest: Number(((cpuBare / baseline.requests) * 1000).toFixed(3)),
    /** Cores 1k agents need at 1 poll + 1 heartbeat per hour each. */
    coresPer1kAgents: Number(((cpuPerReq * hourlyReqPerSecond) / (AGENTS / 1000)).toFixed(5)),
    coresFor1MAgentsHourly: Number((cpuPerReq * (2_000_000 / 3600)).toFixed(2)),
    dbBytes: {
      database: Number(sizes.db),
      agents: Number(sizes.agents),
      agentContent: Number(sizes.content),
    },
    dbBytesPerAgent: Math.round(Number(sizes.db) / AGENTS),
    plannerTickMs: {
      idleMedian: Number(tickIdle.toFixed(1)),
      afterLoadWholeTick: Number(tickAfter.toFixed(1)),
      afterLoadAggregates: Number(aggregatesAfterLoad.toFixed(1)),
      afterVacuumAggregates: Number(aggregatesAfterVacuum.toFixed(1)),
    },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const c of cleanup) {
    try {
      await c();
    } catch {}
  }
}
