/**
 * Agents' latest heartbeats in the database, and the health-gate
 * aggregates kept beside them.
 *
 * Heartbeats are upserts, group-committed: a heartbeat's 204 waits for the
 * transaction that stores it (so an acknowledged heartbeat survives the
 * replica being killed), and heartbeats arriving while one batch commits
 * go together in the next one — one transaction per batch, not per agent.
 *
 * The same transaction keeps the gate's counters (gate-counters.ts): it
 * reads each agent's previous row under a row lock, and moves the agent
 * from the counter rows it counted for to the ones it counts for now —
 * nothing is written when that did not change. The planner reads the
 * counters (gate-aggregates.ts): a few rows per (release, group), so a
 * tick follows the groups a release has reached and their tenants, not
 * the fleet. Who may count (G1 vendorOnly, G2 pinned, G3 installed) is
 * decided there; how much each tenant weighs (G4, G5) stays in the pure
 * functions of fleet/gate.ts.
 */
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import type { FleetAgent, GroupHealth } from "../health.ts";
import { AGENT_INSERT, CHUNK, CONTENT_INSERT, lockAgents, placeholders, takeContent } from "./agent-rows.ts";
import { type Driver, insertRows, num, type Param, type Queryable } from "./driver.ts";
import { GateAggregates, shareCounters } from "./gate-aggregates.ts";
import { type AgentFacts, type ContentFacts, CounterDelta, epochOf, readMarks } from "./gate-counters.ts";
import { scanGate } from "./gate-scan.ts";

/** Why exposed agents count as affected (an agent can have several reasons). */
export interface AffectedReasons {
  markedBad: number;
  rolledBack: number;
  crashes: number;
  handlerFailed: number;
  healthRed: number;
}

export interface GateQuery {
  type: string;
  version: number;
  group: string;
  since: number;
  now: number;
  activeWindowMs: number;
  /** G1: count only vendor tenants' agents. */
  vendorOnly?: boolean;
}

/** Who sent a heartbeat, as the identity edge established it (fleet/identity/routes.ts). */
export interface Sender {
  /** Signed by an enrolled agent key (false: the unenrolled compatibility mode). */
  enrolled: boolean;
  /** Enrolled by (or, unenrolled, reporting for) a vendor tenant. */
  vendor: boolean;
}

export const NO_SENDER: Sender = { enrolled: false, vendor: false };

/** G2: the types a heartbeat's agent holds back on purpose ("*": cadence pinned-n-1, every type). */
export function pinnedTypes(hb: Heartbeat): string[] {
  return hb.policy ? (hb.policy.cadence === "pinned-n-1" ? ["*"] : hb.policy.pinned) : [];
}

/** Active agents of one tenant in one group (the console's tenants-per-group view). */
export interface TenantActivity {
  group: string;
  tenant: string;
  vendor: boolean;
  active: number;
  /** Of those, signed by an enrolled key. */
  enrolled: number;
}

/** What the engine and the server need of the fleet, whatever holds it. */
export interface FleetStore {
  /** Stores an already validated and authenticated heartbeat. False when the fleet is full. */
  ingest(hb: Heartbeat, receivedAt: number, sender?: Sender): Promise<boolean>;
  /** The latest record of one agent (the server compares a heartbeat with the one before). */
  get(tenant: string, agentId: string): Promise<FleetAgent | undefined>;
  groupHealth(q: GateQuery): Promise<GroupHealth>;
  /** Active agents per group. */
  activeByGroup(activeSince: number): Promise<Map<string, number>>;
  /** Active agents per (group, tenant). */
  activeTenants(activeSince: number): Promise<TenantActivity[]>;
  count(): Promise<number>;
  /** Every agent (tests, small fleets; the planner never calls it). */
  list(): Promise<FleetAgent[]>;
}

interface Pending {
  hb: Heartbeat;
  receivedAt: number;
  sender: Sender;
  done: (stored: boolean) => void;
  fail: (e: unknown) => void;
}

const list = (xs: (number | string)[]) => (xs.length ? `,${xs.join(",")},` : "");
const parseWords = (s: unknown) =>
  String(s ?? "")
    .split(",")
    .filter(Boolean);
const parseList = (s: unknown) => parseWords(s).map(Number);
const holds = (pinned: string[], type: string) => pinned.includes("*") || pinned.includes(type);

export class DbFleetStore implements FleetStore {
  private pending: Pending[] = [];
  private flushing = false;
  /** Agents stored, refreshed by each batch that could reach the cap. */
  private known = -1;
  /** Heartbeats accepted since start (console, origin figures). */
  received = 0;

  private readonly counters: GateAggregates;

  constructor(
    private readonly db: Driver,
    private readonly maxAgents = 2_000_000,
  ) {
    this.counters = new GateAggregates(db);
  }

  ingest(hb: Heartbeat, receivedAt: number, sender: Sender = NO_SENDER): Promise<boolean> {
    return new Promise((done, fail) => {
      this.pending.push({ hb, receivedAt, sender, done, fail });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, 2000);
        try {
          const stored = await this.db.tx((q) => this.store(q, batch));
          batch.forEach((p, i) => {
            if (stored[i]) this.received++;
            p.done(stored[i]!);
          });
        } catch (e) {
          for (const p of batch) p.fail(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async store(q: Queryable, batch: Pending[]): Promise<boolean[]> {
    // The same agent twice in one batch: the later heartbeat wins, as it would one by one.
    const latest = new Map<string, Pending>();
    for (const p of batch) latest.set(`${p.hb.tenant}/${p.hb.agentId}`, p);
    // Key order: two replicas' batches lock the agents they share in the same order.
    const keys = [...latest.keys()].sort();
    const accepted = await this.admit(q, keys);
    const agents: Param[][] = [];
    const content: Param[][] = [];
    const now = new Map<string, { agent: AgentFacts; content: ContentFacts[] }>();
    for (const key of keys) {
      if (!accepted.has(key)) continue;
      const { hb, receivedAt, sender } = latest.get(key)!;
      const pinned = pinnedTypes(hb);
      const agent: AgentFacts = {
        key,
        grp: hb.group,
        tenant: hb.tenant,
        vendor: sender.vendor ? 1 : 0,
        enrolled: sender.enrolled ? 1 : 0,
        pinned: list(pinned),
        receivedAt,
      };
      agents.push([
        key,
        hb.tenant,
        hb.group,
        receivedAt,
        hb.health,
        hb.rejected,
        hb.agentVersion,
        agent.enrolled,
        agent.vendor,
        hb.policy?.cadence ?? null,
        agent.pinned,
        1,
      ]);
      const facts: ContentFacts[] = [];
      for (const c of hb.content) {
        const f: ContentFacts = {
          type: c.type,
          version: c.version,
          state: c.handlerState,
          crashes: c.crashes,
          bad: list(c.badVersions),
          rolledBackFrom: list(c.rollbacks.flatMap((r) => (r.from === null ? [] : [r.from]))),
          health: hb.health,
          pinned: holds(pinned, c.type) ? 1 : 0,
        };
        facts.push(f);
        content.push([
          key,
          f.type,
          hb.group,
          receivedAt,
          f.health,
          f.version,
          f.state,
          f.crashes,
          f.bad,
          f.rolledBackFrom,
          hb.tenant,
          agent.vendor,
          f.pinned,
        ]);
      }
      now.set(key, { agent, content: facts });
    }
    const stored = agents.map((a) => a[0] as string);
    await shareCounters(q, this.db.dialect);
    const marks = await readMarks(q);
    const before = await lockAgents(q, this.db.dialect, agents);
    // A heartbeat carries the agent's whole content: types it no longer reports go.
    const beforeContent = await takeContent(q, stored);
    await insertRows(
      q,
      AGENT_INSERT,
      agents,
      `ON CONFLICT (agent_key) DO UPDATE SET tenant = excluded.tenant, grp = excluded.grp,
       received_at = excluded.received_at, health = excluded.health, rejected = excluded.rejected,
       agent_version = excluded.agent_version, enrolled = excluded.enrolled, vendor = excluded.vendor,
       cadence = excluded.cadence, pinned = excluded.pinned, counted = 1`,
    );
    await insertRows(q, CONTENT_INSERT, content, "");
    // Out of the counter rows the previous heartbeat counted for, into the ones this one does.
    const delta = new CounterDelta();
    for (const key of stored) {
      const old = before.get(key);
      if (old) delta.add(old, beforeContent.get(key) ?? [], epochOf(marks, old.grp, old.receivedAt), -1);
      const cur = now.get(key)!;
      delta.add(cur.agent, cur.content, epochOf(marks, cur.agent.grp, cur.agent.receivedAt), 1);
    }
    await delta.apply(q);
    if (this.known >= 0) this.known += agents.length; // an upper bound until the next count
    return batch.map((p) => accepted.has(`${p.hb.tenant}/${p.hb.agentId}`));
  }

  /** The keys that may be stored: near the cap, only agents already known (a flood of made-up ids cannot grow the table). */
  private async admit(q: Queryable, keys: string[]): Promise<Set<string>> {
    const accepted = new Set(keys);
    if (this.known >= 0 && this.known + keys.length <= this.maxAgents) return accepted;
    this.known = num((await q.all("SELECT COUNT(*) AS n FROM agents"))[0]?.n);
    if (this.known + keys.length <= this.maxAgents) return accepted;
    const existing = new Set<string>();
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK);
      const rows = await q.all(
        `SELECT agent_key FROM agents WHERE agent_key IN (${placeholders(chunk)})`,
        chunk,
      );
      for (const r of rows) existing.add(String(r.agent_key));
    }
    let room = this.maxAgents - this.known;
    for (const k of keys) {
      if (existing.has(k)) continue;
      if (room > 0) room--;
      else accepted.delete(k);
    }
    return accepted;
  }

  async groupHealth(g: GateQuery): Promise<GroupHealth> {
    return (await this.gate(g)).health;
  }

  /** The gate's inputs for one release in one group, per tenant, and why the affected agents are affected. */
  gate(g: GateQuery): Promise<{ health: GroupHealth; reasons: AffectedReasons }> {
    return this.counters.gate(g);
  }

  /** The same, computed from scratch over every active agent of the group (the counters' reference). */
  scanGate(g: GateQuery): Promise<{ health: GroupHealth; reasons: AffectedReasons }> {
    return scanGate(this.db, g);
  }

  activeByGroup(activeSince: number): Promise<Map<string, number>> {
    return this.counters.activeByGroup(activeSince);
  }

  activeTenants(activeSince: number): Promise<TenantActivity[]> {
    return this.counters.activeTenants(activeSince);
  }

  async count(): Promise<number> {
    return num((await this.db.all("SELECT COUNT(*) AS n FROM agents"))[0]?.n);
  }

  async get(tenant: string, agentId: string): Promise<FleetAgent | undefined> {
    const key = `${tenant}/${agentId}`;
    return (await this.read(" WHERE agent_key = $1", [key]))[0];
  }

  async list(): Promise<FleetAgent[]> {
    return this.read("", []);
  }

  private async read(where: string, params: Param[]): Promise<FleetAgent[]> {
    const agents = await this.db.all(
      `SELECT agent_key, tenant, grp, received_at, health, rejected, enrolled, vendor, pinned
         FROM agents${where} ORDER BY agent_key`,
      params,
    );
    const content = await this.db.all(`SELECT * FROM agent_content${where} ORDER BY agent_key, type`, params);
    const byKey = new Map<string, FleetAgent>();
    for (const a of agents) {
      byKey.set(String(a.agent_key), {
        id: String(a.agent_key),
        tenant: String(a.tenant),
        group: String(a.grp),
        receivedAt: num(a.received_at),
        health: a.health as FleetAgent["health"],
        content: {},
        rejected: num(a.rejected),
        enrolled: num(a.enrolled) === 1,
        vendor: num(a.vendor) === 1,
        pinned: parseWords(a.pinned),
      });
    }
    for (const c of content) {
      const a = byKey.get(String(c.agent_key));
      if (!a) continue;
      a.content[String(c.type)] = {
        version: c.version === null ? null : num(c.version),
        bad: parseList(c.bad),
        crashes: num(c.crashes),
        rolledBackFrom: parseList(c.rolled_back_from),
        state: String(c.state),
      };
    }
    return [...byKey.values()];
  }

  /** Imports agents from a legacy fleet.json snapshot (one-time migration). */
  async importAgents(agents: FleetAgent[]): Promise<void> {
    await this.db.tx(async (q) => {
      const rows: Param[][] = agents.map((a) => [
        a.id,
        a.tenant,
        a.group,
        a.receivedAt,
        a.health,
        a.rejected,
        "",
        a.enrolled ? 1 : 0,
        a.vendor ? 1 : 0,
        null,
        list(a.pinned ?? []),
      ]);
      await insertRows(
        q,
        `INSERT INTO agents (agent_key, tenant, grp, received_at, health, rejected, agent_version,
         enrolled, vendor, cadence, pinned) VALUES`,
        rows,
        "ON CONFLICT (agent_key) DO NOTHING",
      );
      const content: Param[][] = agents.flatMap((a) =>
        Object.entries(a.content).map(([type, c]) => [
          a.id,
          type,
          a.group,
          a.receivedAt,
          a.health,
          c.version,
          c.state,
          c.crashes,
          list(c.bad),
          list(c.rolledBackFrom),
          a.tenant,
          a.vendor ? 1 : 0,
          holds(a.pinned ?? [], type) ? 1 : 0,
        ]),
      );
      await insertRows(q, CONTENT_INSERT, content, "ON CONFLICT (agent_key, type) DO NOTHING");
    });
  }
}
