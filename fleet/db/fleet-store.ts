/**
 * Agents' latest heartbeats in the database, and the health-gate
 * aggregates computed there.
 *
 * Heartbeats are upserts, group-committed: a heartbeat's 204 waits for the
 * transaction that stores it (so an acknowledged heartbeat survives the
 * replica being killed), and heartbeats arriving while one batch commits
 * go together in the next one — one transaction per batch, not per agent.
 *
 * The gate aggregate is two SQL queries per (release, group) over the index
 * ranges (group, received_at) and (group, type, received_at), grouped by
 * tenant: the planner never loads agents, and its cost follows the groups a
 * release has reached and their tenants, not the fleet. Who may count (G1
 * vendorOnly, G2 pinned, G3 installed) is a WHERE/CASE here; how much each
 * tenant weighs (G4, G5) stays in the pure functions of fleet/gate.ts.
 */
import type { Heartbeat } from "../../core/agent/heartbeat-protocol.ts";
import type { TenantCounts } from "../gate.ts";
import type { FleetAgent, GroupHealth } from "../health.ts";
import { type Driver, num, type Param, type Queryable } from "./driver.ts";

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
/** Rows per INSERT: PostgreSQL allows 65535 parameters (insertRows scales it to the row width). */
const ROWS_PER_INSERT = 500;

export class DbFleetStore implements FleetStore {
  private pending: Pending[] = [];
  private flushing = false;
  /** Agents stored, refreshed by each batch that could reach the cap. */
  private known = -1;
  /** Heartbeats accepted since start (console, origin figures). */
  received = 0;

  constructor(
    private readonly db: Driver,
    private readonly maxAgents = 2_000_000,
  ) {}

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
    const keys = [...latest.keys()];
    const accepted = new Set(keys);
    if (this.known < 0 || this.known + keys.length > this.maxAgents) {
      // Near the cap: only agents already known may report (a flood of made-up ids cannot grow the table).
      this.known = num((await q.all("SELECT COUNT(*) AS n FROM agents"))[0]?.n);
      if (this.known + keys.length > this.maxAgents) {
        const existing = new Set<string>();
        for (let i = 0; i < keys.length; i += ROWS_PER_INSERT) {
          const chunk = keys.slice(i, i + ROWS_PER_INSERT);
          const rows = await q.all(
            `SELECT agent_key FROM agents WHERE agent_key IN (${chunk.map((_, j) => `$${j + 1}`).join(",")})`,
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
      }
    }
    const agents: Param[][] = [];
    const content: Param[][] = [];
    for (const [key, { hb, receivedAt, sender }] of latest) {
      if (!accepted.has(key)) continue;
      const pinned = pinnedTypes(hb);
      agents.push([
        key,
        hb.tenant,
        hb.group,
        receivedAt,
        hb.health,
        hb.rejected,
        hb.agentVersion,
        sender.enrolled ? 1 : 0,
        sender.vendor ? 1 : 0,
        hb.policy?.cadence ?? null,
        list(pinned),
      ]);
      for (const c of hb.content) {
        content.push([
          key,
          c.type,
          hb.group,
          receivedAt,
          hb.health,
          c.version,
          c.handlerState,
          c.crashes,
          list(c.badVersions),
          list(c.rollbacks.flatMap((r) => (r.from === null ? [] : [r.from]))),
          hb.tenant,
          sender.vendor ? 1 : 0,
          holds(pinned, c.type) ? 1 : 0,
        ]);
      }
    }
    await insertRows(
      q,
      `INSERT INTO agents (agent_key, tenant, grp, received_at, health, rejected, agent_version,
       enrolled, vendor, cadence, pinned) VALUES`,
      agents,
      `ON CONFLICT (agent_key) DO UPDATE SET tenant = excluded.tenant, grp = excluded.grp,
       received_at = excluded.received_at, health = excluded.health, rejected = excluded.rejected,
       agent_version = excluded.agent_version, enrolled = excluded.enrolled, vendor = excluded.vendor,
       cadence = excluded.cadence, pinned = excluded.pinned`,
    );
    // A heartbeat carries the agent's whole content: types it no longer reports go.
    const stored = agents.map((a) => a[0] as string);
    for (let i = 0; i < stored.length; i += ROWS_PER_INSERT) {
      const chunk = stored.slice(i, i + ROWS_PER_INSERT);
      await q.run(
        `DELETE FROM agent_content WHERE agent_key IN (${chunk.map((_, j) => `$${j + 1}`).join(",")})`,
        chunk,
      );
    }
    await insertRows(q, CONTENT_INSERT, content, "");
    if (this.known >= 0) this.known += agents.length; // an upper bound until the next count
    return batch.map((p) => accepted.has(`${p.hb.tenant}/${p.hb.agentId}`));
  }

  async groupHealth(g: GateQuery): Promise<GroupHealth> {
    return (await this.gate(g)).health;
  }

  /**
   * The gate's inputs for one release in one group, per tenant, and why the
   * affected agents are affected. G1: vendorOnly counts vendor rows only;
   * G2: agents pinning the type are left out of every count; G3: `installed`
   * (runs V or rolled back from it) is what fills the sample.
   */
  async gate(g: GateQuery): Promise<{ health: GroupHealth; reasons: AffectedReasons }> {
    const activeSince = g.now - g.activeWindowMs;
    const reportingSince = Math.max(activeSince, g.since);
    const vendorOnly = g.vendorOnly ? " AND vendor = 1" : "";
    const perTenant = await this.db.all(
      `SELECT tenant, MAX(vendor) AS vendor, COUNT(*) AS agents,
              SUM(CASE WHEN received_at >= $3 THEN 1 ELSE 0 END) AS reporting
         FROM agents
        WHERE grp = $1 AND received_at >= $2${vendorOnly}
          AND pinned NOT LIKE '%,*,%' AND pinned NOT LIKE $4
        GROUP BY tenant ORDER BY tenant`,
      [g.group, activeSince, reportingSince, `%,${g.type},%`],
    );
    const v = g.version;
    const mark = `%,${v},%`;
    // Affected ⊆ exposed: marked bad, rolled back from, or running V with crashes, a failed handler or red.
    const contentPerTenant = await this.db.all(
      `SELECT tenant,
         SUM(CASE WHEN version = $3 OR bad LIKE $5 OR rolled_back_from LIKE $5 THEN 1 ELSE 0 END) AS exposed,
         SUM(CASE WHEN version = $3 OR rolled_back_from LIKE $5 THEN 1 ELSE 0 END) AS installed,
         SUM(CASE WHEN version = $3 THEN 1 ELSE 0 END) AS adopted,
         SUM(CASE WHEN bad LIKE $5 OR rolled_back_from LIKE $5 OR (version = $3 AND (crashes > 0
               OR state IN ('failed', 'crash-looping') OR health = 'red')) THEN 1 ELSE 0 END) AS affected,
         SUM(CASE WHEN bad LIKE $5 THEN 1 ELSE 0 END) AS marked_bad,
         SUM(CASE WHEN rolled_back_from LIKE $5 THEN 1 ELSE 0 END) AS rolled_back,
         SUM(CASE WHEN version = $3 AND crashes > 0 THEN 1 ELSE 0 END) AS crashes,
         SUM(CASE WHEN version = $3 AND state IN ('failed', 'crash-looping') THEN 1 ELSE 0 END) AS failed,
         SUM(CASE WHEN version = $3 AND health = 'red' THEN 1 ELSE 0 END) AS red
       FROM agent_content
      WHERE grp = $1 AND type = $2 AND received_at >= $4 AND pinned = 0${vendorOnly}
      GROUP BY tenant`,
      [g.group, g.type, v, reportingSince, mark],
    );
    const tenants = new Map<string, TenantCounts>();
    for (const r of perTenant) {
      tenants.set(String(r.tenant), {
        tenant: String(r.tenant),
        vendor: num(r.vendor) === 1,
        agents: num(r.agents),
        reporting: num(r.reporting),
        exposed: 0,
        installed: 0,
        adopted: 0,
        affected: 0,
      });
    }
    const reasons: AffectedReasons = {
      markedBad: 0,
      rolledBack: 0,
      crashes: 0,
      handlerFailed: 0,
      healthRed: 0,
    };
    for (const c of contentPerTenant) {
      // A content row whose agent row is not active (cannot happen: both carry the same received_at) is skipped.
      const t = tenants.get(String(c.tenant));
      if (!t) continue;
      t.exposed = num(c.exposed);
      t.installed = num(c.installed);
      t.adopted = num(c.adopted);
      t.affected = num(c.affected);
      reasons.markedBad += num(c.marked_bad);
      reasons.rolledBack += num(c.rolled_back);
      reasons.crashes += num(c.crashes);
      reasons.handlerFailed += num(c.failed);
      reasons.healthRed += num(c.red);
    }
    const all = [...tenants.values()];
    const sum = (k: keyof Omit<TenantCounts, "tenant" | "vendor">) => all.reduce((n, t) => n + t[k], 0);
    return {
      health: {
        group: g.group,
        agents: sum("agents"),
        reporting: sum("reporting"),
        exposed: sum("exposed"),
        adopted: sum("adopted"),
        affected: sum("affected"),
        installed: sum("installed"),
        tenants: all,
      },
      reasons,
    };
  }

  async activeByGroup(activeSince: number): Promise<Map<string, number>> {
    const rows = await this.db.all(
      "SELECT grp, COUNT(*) AS n FROM agents WHERE received_at >= $1 GROUP BY grp",
      [activeSince],
    );
    return new Map(rows.map((r) => [String(r.grp), num(r.n)]));
  }

  async activeTenants(activeSince: number): Promise<TenantActivity[]> {
    const rows = await this.db.all(
      `SELECT grp, tenant, MAX(vendor) AS vendor, COUNT(*) AS n, SUM(enrolled) AS enrolled
         FROM agents WHERE received_at >= $1 GROUP BY grp, tenant`,
      [activeSince],
    );
    return rows.map((r) => ({
      group: String(r.grp),
      tenant: String(r.tenant),
      vendor: num(r.vendor) === 1,
      active: num(r.n),
      enrolled: num(r.enrolled),
    }));
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

const CONTENT_INSERT = `INSERT INTO agent_content (agent_key, type, grp, received_at, health, version, state,
  crashes, bad, rolled_back_from, tenant, vendor, pinned) VALUES`;

/** Multi-row INSERT in chunks (one round trip per chunk). */
export async function insertRows(q: Queryable, head: string, rows: Param[][], tail: string): Promise<void> {
  if (rows.length === 0) return;
  const width = rows[0]!.length;
  const per = Math.max(1, Math.floor(ROWS_PER_INSERT * (10 / width)));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    const values = chunk
      .map((_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(", ")})`)
      .join(", ");
    await q.run(`${head} ${values} ${tail}`, chunk.flat());
  }
}
