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
 * How the 1M fleet is built: every agent's row and its enrollment are
 * seeded by SQL (INSERT … SELECT generate_series, group shares
 * 1/4/10/20/30/35 %), so the database holds the whole enrolled fleet; then
 * the HTTP phase replays the fleet's hour in schedule order (the hourly
 * ±10 % schedule of N agents is a random order of the agents) as fast as
 * the stack answers, each agent event being a conditional GET of its group
 * index (304) and a heartbeat POST signed by the agent's key with the
 * agent's own signing code (core/agent/identity.ts: `seq`, Ed25519 over the
 * body) — checked against the enrollment (I1–I5), its sequence number
 * advanced, then upserted into the 1M-row tables with the gate counters.
 * Every heartbeat reports the release's version (seeded agents run the one
 * before): the hour a release reaches every agent, when each heartbeat
 * moves its agent between counter rows. Keys: a pool of KEY_POOL Ed25519
 * pairs, agent i enrolled with pair i mod KEY_POOL (a million key pairs
 * would take minutes to make); the service verifies every signature, only
 * its cache of imported public keys sees fewer distinct keys. The run
 * reports how much of the simulated hour the wall-clock phase covered.
 *
 * Reported: req/s and p50/p99 per request kind, the database's bytes per
 * agent, CPU seconds per request and the CPU cores 1k agents need at the
 * hourly rate, the planner tick time with a release live in all six
 * groups (from the gate counters; and the from-scratch scan they replaced,
 * in the same run); and the same request mix against a bare Bun.serve (the
 * baseline: no database, no validation, no proxy, no signature) in the
 * same run.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { type HeartbeatSigner, makeSigner } from "../core/agent/identity.ts";
import { SIGNATURE_ALG } from "../core/agent/identity-protocol.ts";
import { sha256Hex } from "../core/crypto/digest.ts";
import { publish } from "../core/repo/publish.ts";
import { loadReleaseConfig } from "../fleet/config.ts";
import { insertRows } from "../fleet/db/driver.ts";
import { openFleetDb } from "../fleet/db/index.ts";
import { ReleaseEngine } from "../fleet/engine.ts";
import { freePort, startPostgres } from "../plugins/sinks/testutil/servers.ts";
import { bareScript, cpuOf, makeVendor, serveReplica, startProxy, treeCpu } from "./fleet/scale-stack.ts";

const AGENTS = Number(process.env.AGENTS ?? 1_000_000);
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? 120);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 48);
const KEY_POOL = Number(process.env.KEY_POOL ?? 1000);
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

const agentId = (i: number) => `agent-${String(i).padStart(7, "0")}`;

function heartbeatBody(i: number, group: string, seq: number): string {
  return `{"schema":1,"agentId":"${agentId(i)}","tenant":"acme","group":"${group}","agentVersion":"1.0.0","sentAt":"${new Date().toISOString()}","seq":${seq},"health":"green","content":[{"type":"TestText","version":2,"handlerState":"loaded","badVersions":[],"crashes":0,"rollbacks":[]}],"rejected":0,"lastRejections":[]}`;
}

/** The key pool: private keys to sign with, public keys (SPKI, base64url) to enroll. */
async function makeKeyPool(n: number): Promise<{ keys: CryptoKey[]; publicKeys: string[] }> {
  const keys: CryptoKey[] = [];
  const publicKeys: string[] = [];
  for (let i = 0; i < n; i++) {
    const pair = (await crypto.subtle.generateKey({ name: SIGNATURE_ALG }, true, [
      "sign",
      "verify",
    ])) as unknown as CryptoKeyPair;
    keys.push(pair.privateKey);
    publicKeys.push(Buffer.from(await crypto.subtle.exportKey("spki", pair.publicKey)).toString("base64url"));
  }
  return { keys, publicKeys };
}

/** Replays agents in a random (schedule) order for `seconds`; each event = GET index (conditional) + POST heartbeat. */
async function load(
  base: string,
  seconds: number,
  etags: Map<string, string>,
  signerOf: (i: number) => HeartbeatSigner,
): Promise<Phase> {
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
        // What the agent's HeartbeatReporter does: number, serialise, sign the exact bytes.
        const signer = signerOf(i);
        const body = heartbeatBody(i, group, signer.nextSeq(new Date()));
        const headers = await signer.headers(new TextEncoder().encode(body));
        const r = await fetch(`${base}fleet/heartbeat`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body,
        });
        const answer = await r.text();
        if (r.status !== 204) {
          if (errors++ === 0) log(`heartbeat answered ${r.status}: ${answer.slice(0, 200)}`);
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

// ------------------------------------------------------------------ main

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

  // The whole fleet in the database, enrolled: every agent on v1, last heard within the hour.
  const now = Date.now();
  let t0 = performance.now();
  const pool = await makeKeyPool(KEY_POOL);
  log(`${KEY_POOL} Ed25519 key pairs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  t0 = performance.now();
  const shareCase = `CASE ${(() => {
    let acc = 0;
    return GROUPS.map(([g, s]) => {
      acc += s;
      return `WHEN g % 100 < ${acc} THEN '${g}'`;
    }).join(" ");
  })()} END`;
  await db.driver.run("CREATE TEMPORARY TABLE bench_keys (i INTEGER PRIMARY KEY, pk TEXT NOT NULL)");
  await insertRows(
    db.driver,
    "INSERT INTO bench_keys (i, pk) VALUES",
    pool.publicKeys.map((pk, i) => [i, pk]),
    "",
  );
  const enrolledAt = new Date(now - 86_400_000);
  await db.driver.run(
    `INSERT INTO enrollments (tenant, agent_id, grp, alg, public_key, vendor, enrolled_at, enrolled_ms)
     SELECT 'acme', 'agent-' || lpad(g::text, 7, '0'), ${shareCase}, 'Ed25519', k.pk, 0, $1, $2
       FROM generate_series(0, ${AGENTS - 1}) AS g JOIN bench_keys k ON k.i = g % ${KEY_POOL}`,
    [enrolledAt.toISOString(), enrolledAt.getTime()],
  );
  await db.driver.run(
    `INSERT INTO agents (agent_key, tenant, grp, received_at, health, rejected, agent_version, enrolled)
     SELECT 'acme/' || agent_id, 'acme', grp, ${now} - (substr(agent_id, 7)::bigint * 7919 % 3600000), 'green', 0, '1.0.0', 1
       FROM enrollments`,
  );
  await db.driver.run(
    `INSERT INTO agent_content (agent_key, type, grp, received_at, health, version, state, crashes, bad, rolled_back_from, tenant)
     SELECT agent_key, 'TestText', grp, received_at, health, 1, 'loaded', 0, '', '', tenant FROM agents`,
  );
  await db.driver.run("ANALYZE");
  const seedSeconds = (performance.now() - t0) / 1000;
  log(`seeded ${AGENTS} enrolled agents in ${seedSeconds.toFixed(1)} s`);

  // Seeded rows are not counted yet, like the rows of a database upgraded to 004: the first
  // read of the gate counts the active ones (in sweep chunks) — the one-time cost of the upgrade.
  const config = loadReleaseConfig(cfg);
  const windowMs = config.health.activeWindowMinutes * 60_000;
  t0 = performance.now();
  await db.fleet.activeByGroup(Date.now() - windowMs);
  const countersBuildSeconds = (performance.now() - t0) / 1000;
  log(`gate counters built for ${AGENTS} agents in ${countersBuildSeconds.toFixed(1)} s`);

  // A release live in all six groups: the planner's worst case (six aggregates per tick).
  const engine = new ReleaseEngine({ config, db });
  const pkg = join(dir, "TestText-2.tar");
  writeFileSync(pkg, await vendor.pack("TestText", 2, { "data.txt": "two" }));
  await engine.start({ type: "TestText", version: 2, packageFile: pkg });
  for (let i = 1; i < GROUPS.length; i++)
    await engine.promote({ force: true, reason: "bench: the release live in every group" });

  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const timed = async (n: number, fn: () => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await fn();
      times.push(performance.now() - t);
    }
    return median(times);
  };
  /** The gate inputs of every live group, from the counters (what a tick reads) or by the scan they replaced. */
  const aggregates = async (how: "counters" | "scan") => {
    const state = await db.releases.load();
    const r = state.releases.find((x) => x.status === "active")!;
    const t = performance.now();
    for (const g of r.groups) {
      const q = {
        type: r.type,
        version: r.version,
        group: g.name,
        since: Date.parse(g.publishedAt!),
        now: Date.now(),
        activeWindowMs: windowMs,
      };
      await (how === "counters" ? db.fleet.gate(q) : db.fleet.scanGate(q));
    }
    return performance.now() - t;
  };
  const tickIdle = await timed(5, () => engine.tick());
  const scanIdle = await timed(5, () => aggregates("scan"));
  const countersIdle = await timed(5, () => aggregates("counters"));
  log(
    `planner tick with ${AGENTS} agents, 6 live groups: median ${tickIdle.toFixed(0)} ms (aggregates: counters ${countersIdle.toFixed(1)} ms, scan ${scanIdle.toFixed(0)} ms)`,
  );
  const sizeQuery = `SELECT pg_database_size(current_database()) AS db, pg_total_relation_size('agents') AS agents,
            pg_total_relation_size('agent_content') AS content, pg_total_relation_size('enrollments') AS enrollments,
            pg_total_relation_size('agent_seq') AS seq,
            pg_total_relation_size('gate_agents') + pg_total_relation_size('gate_content') AS counters`;
  // Sizes without the dead row versions the counters' first build left (autovacuum would clear them).
  await db.driver.run("VACUUM ANALYZE");
  const sizes = (await db.driver.all(sizeQuery))[0]!;

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
  const load0 = loadavg()[0]!;
  const c0 = cpu();
  const signers = new Map<number, HeartbeatSigner>();
  const signerOf = (i: number) => {
    const known = signers.get(i);
    if (known) return known;
    const made = makeSigner("acme", agentId(i), pool.keys[i % KEY_POOL]!);
    signers.set(i, made);
    return made;
  };
  const fleet = await load(proxy.url, LOAD_SECONDS, etags, signerOf);
  const c1 = cpu();
  const load1 = loadavg()[0]!;
  const cpuFleet = {
    replicas: c1.replicas - c0.replicas,
    postgres: c1.postgres - c0.postgres,
    nginx: c1.nginx - c0.nginx,
  };
  const cpuTotal = cpuFleet.replicas + cpuFleet.postgres + cpuFleet.nginx;
  // Right after the load: the gate aggregates from the counters (the sweep included) and by the
  // scan they replaced, then a whole tick (which may wait for a replica's own tick under the planner
  // lock), then both again once VACUUM has cleared the dead row versions the upserts left.
  const countersAfterLoad = await aggregates("counters");
  const scanAfterLoad = await aggregates("scan");
  t0 = performance.now();
  await engine.tick();
  const tickAfter = performance.now() - t0;
  const sizesAfter = (await db.driver.all(sizeQuery))[0]!;
  await db.driver.run("VACUUM ANALYZE agents");
  await db.driver.run("VACUUM ANALYZE agent_content");
  const countersAfterVacuum = await aggregates("counters");
  const scanAfterVacuum = await aggregates("scan");
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
  const baseline = await load(`http://127.0.0.1:${barePort}/`, LOAD_SECONDS, etags, signerOf);
  const cpuBare = cpuOf(bare.pid) - b0;

  const hourlyReqPerSecond = (AGENTS * 2) / 3600;
  const cpuPerReq = cpuTotal / fleet.requests;
  const result = {
    agents: AGENTS,
    agentsInDbAfter: agentsAfter,
    seedSeconds: Number(seedSeconds.toFixed(1)),
    /** The machine's 1-minute load average at the start and end of the fleet phase (2 cores, shared). */
    loadAverage: [Number(load0.toFixed(1)), Number(load1.toFixed(1))],
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
    keyPool: KEY_POOL,
    countersBuildSeconds: Number(countersBuildSeconds.toFixed(1)),
    dbBytes: {
      database: Number(sizes.db),
      agents: Number(sizes.agents),
      agentContent: Number(sizes.content),
      enrollments: Number(sizes.enrollments),
      gateCounters: Number(sizes.counters),
      afterLoad: {
        database: Number(sizesAfter.db),
        agentSeq: Number(sizesAfter.seq),
      },
    },
    dbBytesPerAgent: Math.round(Number(sizes.db) / AGENTS),
    plannerTickMs: {
      idleMedian: Number(tickIdle.toFixed(1)),
      afterLoadWholeTick: Number(tickAfter.toFixed(1)),
    },
    /** The six gate aggregates of a tick: from the counters, and by the from-scratch scan (before). */
    aggregatesMs: {
      countersIdleMedian: Number(countersIdle.toFixed(1)),
      scanIdleMedian: Number(scanIdle.toFixed(1)),
      countersAfterLoad: Number(countersAfterLoad.toFixed(1)),
      scanAfterLoad: Number(scanAfterLoad.toFixed(1)),
      countersAfterVacuum: Number(countersAfterVacuum.toFixed(1)),
      scanAfterVacuum: Number(scanAfterVacuum.toFixed(1)),
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
