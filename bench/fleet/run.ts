/**
 * Fleet simulation benchmark (`bun bench/fleet/run.ts`): thousands of
 * simulated agents — the real update client on a fake clock — polling a
 * repository served by a stock nginx, the real release engine and fleet
 * endpoint deciding promotions and aborts.
 *
 *   1. staged rollout: a healthy release through every group (default soak
 *      times), a release that crashes every host, and one that crashes 3 %
 *      of hosts; then the baseline — the same crashing content pushed to
 *      every group at once — and the blast-radius ratio against it
 *   2. origin load: --load-agents pollers (default 100k) hourly ±10 %,
 *      steady state and an update hour, extrapolated to 1M
 *
 *   bun bench/fleet/run.ts [--agents 2000] [--load-agents 100000] [--skip-load] [--seed N] [--json]
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";

process.env.OUTPOST_LOG_QUIET = "1";

import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { TrustStore } from "../../core/crypto/cms.ts";
import { initKeys, KEY_FILES, loadSigningKeys } from "../../core/crypto/keys.ts";
import { log } from "../../core/log.ts";
import { packDirectory } from "../../core/package/pack.ts";
import { publish } from "../../core/repo/publish.ts";
import {
  type FetchOptions,
  type FetchResult,
  HttpTransport,
  type Transport,
} from "../../core/update/transport.ts";
import { DEFAULT_GROUPS } from "../../fleet/config.ts";
import { type Nginx, type OriginStats, startNginx } from "./nginx.ts";
import { FleetScenario, type ReleaseOutcome, type ScenarioGroup } from "./scenario.ts";
import { FleetSim, SIM_TYPE, SimAgent, seededRandom, simPayload } from "./sim.ts";

// Imports are evaluated before the assignment above; the logger must be told directly.
log.setStderr(false);

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "2000" },
    "load-agents": { type: "string", default: "100000" },
    "skip-load": { type: "boolean", default: false },
    seed: { type: "string", default: "20240719" },
    json: { type: "boolean", default: false },
  },
});
const AGENTS = Number(values.agents);
const LOAD_AGENTS = Number(values["load-agents"]);
const SEED = Number(values.seed);
const HOUR = 3600_000;

/** Counts what the agents asked of the origin, per simulated minute. */
class Meter {
  requests = 0;
  notModified = 0;
  bodyBytes = 0;
  readonly perMinute = new Map<number, { requests: number; bytes: number }>();
  constructor(private readonly clock: () => number) {}
  add(r: FetchResult): void {
    const bytes = r.status === 200 ? r.body.byteLength : 0;
    this.requests++;
    if (r.status === 304) this.notModified++;
    this.bodyBytes += bytes;
    const m = Math.floor(this.clock() / 60_000);
    const slot = this.perMinute.get(m) ?? { requests: 0, bytes: 0 };
    slot.requests++;
    slot.bytes += bytes;
    this.perMinute.set(m, slot);
  }
  snapshot() {
    return {
      requests: this.requests,
      notModified: this.notModified,
      bodyBytes: this.bodyBytes,
      at: this.clock(),
    };
  }
  peakSince(from: number, to: number): { requestsPerMinute: number; bytesPerMinute: number } {
    let r = 0;
    let b = 0;
    for (const [m, s] of this.perMinute) {
      if (m * 60_000 < from || m * 60_000 >= to) continue;
      r = Math.max(r, s.requests);
      b = Math.max(b, s.bytes);
    }
    return { requestsPerMinute: r, bytesPerMinute: b };
  }
}

class CountingTransport implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly meter: Meter,
  ) {}
  get describe() {
    return this.inner.describe;
  }
  async get(path: string, opts: FetchOptions): Promise<FetchResult> {
    const r = await this.inner.get(path, opts);
    this.meter.add(r);
    return r;
  }
}

function groupsFor(total: number): ScenarioGroup[] {
  // The seed's shape: a handful of engineering machines, dogfood, then public groups growing in size.
  const shares = [0.01, 0.04, 0.1, 0.2, 0.3, 0.35];
  const groups = DEFAULT_GROUPS.map((g, i) => ({
    name: g.name,
    promote: g.promote ?? "auto",
    soakMinutes: g.soakMinutes ?? 360,
    agents: Math.max(5, Math.round(total * (shares[i] ?? 0.1))),
  }));
  const sum = groups.reduce((a, g) => a + g.agents, 0);
  const last = groups[groups.length - 1];
  if (last) last.agents += total - sum;
  return groups;
}

const h = (ms: number | null) => (ms === null ? "n/a" : `${(ms / HOUR).toFixed(1)} h`);
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

function originSummary(o: OriginStats, hours: number) {
  return {
    requests: o.requests,
    requestsPerSecond: o.requests / (hours * 3600),
    bytesSent: o.bytesSent,
    bytesPerSecond: o.bytesSent / (hours * 3600),
    notModifiedShare: o.requests ? o.notModified / o.requests : 0,
    errors: o.other,
  };
}

async function stagedRollout(root: string, keysDir: string) {
  const dir = join(root, "rollout");
  const repo = join(dir, "repo");
  mkdirSync(repo, { recursive: true });
  const nginx = await startNginx(repo, join(root, "nginx-rollout"), { readable: [root, dir, repo] });
  let clock = () => 0;
  const meter = new Meter(() => clock());
  const groups = groupsFor(AGENTS);
  const scenario = await FleetScenario.create({
    root: dir,
    keysDir,
    groups,
    health: {},
    seed: SEED,
    transport: () => new CountingTransport(new HttpTransport(nginx.url), meter),
    concurrency: 64,
    tickEverySteps: 10,
  });
  clock = () => scenario.sim.now;
  const outcomes: { name: string; outcome: ReleaseOutcome; origin: ReturnType<typeof originSummary> }[] = [];
  const phase = async (name: string, run: () => Promise<ReleaseOutcome>) => {
    const mark = nginx.mark();
    const t0 = scenario.sim.now;
    const t = performance.now();
    const outcome = await run();
    const hours = Math.max(1 / 60, (scenario.sim.now - t0) / HOUR);
    outcomes.push({ name, outcome, origin: originSummary(nginx.since(mark), hours) });
    if (!values.json) {
      console.log(
        `  ${name}: ${outcome.status} after ${h((outcome.endedAt ?? scenario.sim.now) - outcome.startedAt)} sim (${((performance.now() - t) / 1000).toFixed(0)} s wall, ${outcome.cycles} agent cycles)`,
      );
    }
  };
  try {
    await scenario.baseline(1);
    await phase("healthy release", () => scenario.release(2, 0, 14 * 24));
    await phase("crashing release (100 % of hosts)", () => scenario.release(3, 1.0, 48));
    await scenario.sim.runUntil(scenario.sim.now + 2 * HOUR);
    await phase("crashing release (3 % of hosts)", () => scenario.release(5, 0.03, 7 * 24));
    await scenario.sim.runUntil(scenario.sim.now + 2 * HOUR);
    // Baseline: the same crashing content pushed to every group at once, no stages, no health gate.
    const bytes = await scenario.pack(7, 1.0);
    const pushedAt = scenario.sim.now;
    for (const g of groups) {
      await publish({ repo, group: g.name, keys: keysDir, packageBytes: bytes, now: new Date(pushedAt) });
    }
    await scenario.sim.runUntil(pushedAt + 2 * HOUR);
    const unstaged = scenario.sim.agents.filter((a) => a.activated.some((x) => x.version === 7)).length;
    return { groups, outcomes, unstaged, fleet: scenario.sim.agents.length };
  } finally {
    await scenario.stop();
    await nginx.stop();
  }
}

/** N agents (full update client, no heartbeats) on one group: steady polling, then one update hour. */
async function originLoad(root: string, keysDir: string, n: number) {
  const dir = join(root, "load");
  const repo = join(dir, "repo");
  mkdirSync(repo, { recursive: true });
  const nginx: Nginx = await startNginx(repo, join(root, "nginx-load"), {
    readable: [root, dir, repo],
    workers: 2,
  });
  const start = Date.now();
  const random = seededRandom(SEED + 1);
  const sim = new FleetSim({
    start,
    stepMs: 60_000,
    schedule: { intervalSeconds: 3600, jitter: 0.1, maxBackoffSeconds: 6 * 3600 },
    random,
    concurrency: 128,
  });
  const meter = new Meter(() => sim.now);
  const trust = (await TrustStore.load(join(keysDir, KEY_FILES.rootCert))).withVerificationMemo();
  const keys = await loadSigningKeys(keysDir);
  const pack = async (version: number) => {
    const src = join(dir, `src-${version}`);
    mkdirSync(src, { recursive: true });
    for (const [name, data] of Object.entries(simPayload(version))) await Bun.write(join(src, name), data);
    return packDirectory({ type: SIM_TYPE, version, keys, dir: src, now: new Date(sim.now) });
  };
  try {
    await publish({
      repo,
      group: "public-1",
      keys: keysDir,
      packageBytes: await pack(1),
      now: new Date(sim.now),
    });
    for (let i = 0; i < n; i++) {
      const agent = new SimAgent({
        id: `load-${i}`,
        group: "public-1",
        tenant: "load",
        susceptibility: 1,
        transport: new CountingTransport(new HttpTransport(nginx.url), meter),
        trust,
        now: sim.clock,
        crashDelayMs: 0,
        random: seededRandom(SEED * 31 + i),
      });
      sim.add(agent, start + random() * HOUR);
    }
    const t = performance.now();
    await sim.runUntil(start + 1.2 * HOUR); // everyone has installed v1 and holds an ETag
    const steadyMark = nginx.mark();
    const steadyFrom = sim.now;
    await sim.runUntil(steadyFrom + HOUR);
    const steady = nginx.since(steadyMark);
    const updateMark = nginx.mark();
    const updateFrom = sim.now;
    await publish({
      repo,
      group: "public-1",
      keys: keysDir,
      packageBytes: await pack(2),
      now: new Date(sim.now),
    });
    await sim.runUntil(updateFrom + HOUR);
    const update = nginx.since(updateMark);
    const adopted = sim.agents.filter((a) => a.version === 2).length;
    return {
      agents: n,
      wallSeconds: (performance.now() - t) / 1000,
      steady: { ...originSummary(steady, 1), peak: meter.peakSince(steadyFrom, steadyFrom + HOUR) },
      update: { ...originSummary(update, 1), peak: meter.peakSince(updateFrom, updateFrom + HOUR), adopted },
    };
  } finally {
    await nginx.stop();
  }
}

const root = mkdtempSync(join(tmpdir(), "outpost-fleet-bench-"));
try {
  const keysDir = join(root, "keys");
  await initKeys(keysDir, { now: new Date(Date.now() - 24 * HOUR) });
  if (!values.json) console.log(`staged rollout over ${AGENTS} simulated agents (nginx origin)`);
  const rollout = await stagedRollout(root, keysDir);
  const load = values["skip-load"] ? null : await originLoad(root, keysDir, LOAD_AGENTS);

  const healthy = rollout.outcomes[0]?.outcome;
  const bad = rollout.outcomes[1]?.outcome;
  const subtle = rollout.outcomes[2]?.outcome;
  const result = {
    fleet: rollout.fleet,
    groups: rollout.groups.map((g) => ({
      name: g.name,
      agents: g.agents,
      promote: g.promote,
      soakMinutes: g.soakMinutes,
    })),
    healthy: healthy && {
      status: healthy.status,
      lastGroupPublishedHours:
        healthy.lastGroupPublishedAt && (healthy.lastGroupPublishedAt - healthy.startedAt) / HOUR,
      allAgentsHours: healthy.allAgentsAt && (healthy.allAgentsAt - healthy.startedAt) / HOUR,
      completedHours: healthy.endedAt && (healthy.endedAt - healthy.startedAt) / HOUR,
      origin: rollout.outcomes[0]?.origin,
    },
    crashing: [bad, subtle].map((o, i) =>
      o
        ? {
            crashRate: o.crashRate,
            status: o.status,
            groupsReached: o.groupsReached,
            installed: o.installedTotal,
            installedBy: o.installedBy,
            blastRadius: o.installedTotal / o.fleet,
            troubleToAbortSeconds:
              o.abortedAt !== null && o.firstTroubleAt !== null
                ? (o.abortedAt - o.firstTroubleAt) / 1000
                : null,
            startToAbortHours: o.abortedAt !== null ? (o.abortedAt - o.startedAt) / HOUR : null,
            reason: o.abortReason,
            origin: rollout.outcomes[i + 1]?.origin,
          }
        : null,
    ),
    unstagedBaseline: { installed: rollout.unstaged, blastRadius: rollout.unstaged / rollout.fleet },
    originLoad: load && {
      ...load,
      extrapolated1M: {
        steadyRequestsPerSecond: (load.steady.requestsPerSecond * 1_000_000) / load.agents,
        steadyBytesPerSecond: (load.steady.bytesPerSecond * 1_000_000) / load.agents,
        updateHourRequestsPerSecond: (load.update.requestsPerSecond * 1_000_000) / load.agents,
        updateHourBytesPerSecond: (load.update.bytesPerSecond * 1_000_000) / load.agents,
        updatePeakRequestsPerSecond: (load.update.peak.requestsPerMinute / 60) * (1_000_000 / load.agents),
      },
    },
  };
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log("\nresults");
    if (result.healthy) {
      console.log(
        `  healthy release: last group published after ${result.healthy.lastGroupPublishedHours?.toFixed(1)} h, every agent on it after ${result.healthy.allAgentsHours?.toFixed(1)} h, completed after ${result.healthy.completedHours?.toFixed(1)} h`,
      );
      const o = result.healthy.origin;
      if (o)
        console.log(
          `    origin during the rollout: ${o.requests} requests (${o.requestsPerSecond.toFixed(2)}/s), ${mib(o.bytesSent)} (${(o.bytesPerSecond / 1024).toFixed(1)} KiB/s), 304 share ${pct(o.notModifiedShare)}`,
        );
    }
    for (const c of result.crashing) {
      if (!c) continue;
      console.log(
        `  crashing release (${pct(c.crashRate)} of hosts): ${c.status} in ${c.groupsReached.join(" → ")}; installed by ${c.installed}/${result.fleet} agents (blast radius ${pct(c.blastRadius)}); first crash report → abort ${c.troubleToAbortSeconds ?? "n/a"} s; start → abort ${c.startToAbortHours?.toFixed(2)} h`,
      );
    }
    console.log(
      `  baseline, same crashing content to every group at once: installed by ${result.unstagedBaseline.installed}/${result.fleet} agents within 2 h (blast radius ${pct(result.unstagedBaseline.blastRadius)})`,
    );
    const staged = result.crashing[0];
    if (staged && result.unstagedBaseline.installed > 0) {
      console.log(
        `  ratio: staged blast radius / all-at-once = ${(staged.installed / result.unstagedBaseline.installed).toFixed(4)} (${(result.unstagedBaseline.installed / Math.max(1, staged.installed)).toFixed(0)}x fewer hosts hit)`,
      );
    }
    if (result.originLoad) {
      const l = result.originLoad;
      const x = l.extrapolated1M;
      console.log(
        `\norigin load, ${l.agents} agents polling hourly ±10 % (${l.wallSeconds.toFixed(0)} s wall)`,
      );
      console.log(
        `  steady hour: ${l.steady.requests} requests (${l.steady.requestsPerSecond.toFixed(1)}/s, peak ${(l.steady.peak.requestsPerMinute / 60).toFixed(1)}/s), ${mib(l.steady.bytesSent)} (${(l.steady.bytesPerSecond / 1024).toFixed(1)} KiB/s), 304 share ${pct(l.steady.notModifiedShare)}`,
      );
      console.log(
        `  update hour: ${l.update.requests} requests (${l.update.requestsPerSecond.toFixed(1)}/s, peak ${(l.update.peak.requestsPerMinute / 60).toFixed(1)}/s), ${mib(l.update.bytesSent)} (${(l.update.bytesPerSecond / 1024).toFixed(1)} KiB/s), 304 share ${pct(l.update.notModifiedShare)}, ${l.update.adopted}/${l.agents} agents updated`,
      );
      console.log(
        `  extrapolated to 1M agents: steady ${x.steadyRequestsPerSecond.toFixed(0)} req/s, ${(x.steadyBytesPerSecond / 1048576).toFixed(2)} MiB/s; update hour ${x.updateHourRequestsPerSecond.toFixed(0)} req/s (peak ${x.updatePeakRequestsPerSecond.toFixed(0)}/s), ${(x.updateHourBytesPerSecond / 1048576).toFixed(2)} MiB/s`,
      );
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
