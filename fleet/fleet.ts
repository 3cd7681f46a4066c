/**
 * The fleet in memory: the latest heartbeat of every agent, for
 * simulations and unit tests that judge health without a database, and
 * the reader of the STATE/fleet.json snapshots earlier versions wrote
 * (imported once into the database, fleet/db/index.ts). `contentctl serve`
 * keeps the fleet in the database (fleet/db/fleet-store.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import type { Heartbeat } from "../core/agent/heartbeat-protocol.ts";
import { StoreError } from "../core/errors.ts";
import { lazySchema } from "../core/schema/lazy-schema.ts";
import {
  type FleetStore,
  type GateQuery,
  NO_SENDER,
  pinnedTypes,
  type Sender,
  type TenantActivity,
} from "./db/fleet-store.ts";
import { type FleetAgent, type GroupHealth, groupHealth } from "./health.ts";

const SnapshotSchema = lazySchema(() =>
  z
    .object({
      schema: z.literal(1),
      savedAt: z.iso.datetime(),
      agents: z.array(
        z.object({
          id: z.string(),
          tenant: z.string(),
          group: z.string(),
          receivedAt: z.number(),
          health: z.enum(["green", "amber", "red"]),
          content: z.record(
            z.string(),
            z.object({
              version: z.number().nullable(),
              bad: z.array(z.number()),
              crashes: z.number(),
              rolledBackFrom: z.array(z.number()),
              state: z.string(),
            }),
          ),
          rejected: z.number(),
          enrolled: z.boolean().optional(),
          vendor: z.boolean().optional(),
          pinned: z.array(z.string()).optional(),
        }),
      ),
    })
    .strict(),
);

export class FleetRegistry implements FleetStore {
  private readonly byId = new Map<string, FleetAgent>();
  /** Heartbeats accepted since start (for the console and the simulation's origin figures). */
  received = 0;

  constructor(private readonly maxAgents = 2_000_000) {}

  get size(): number {
    return this.byId.size;
  }

  agents(): Iterable<FleetAgent> {
    return this.byId.values();
  }

  /** Stores an already validated and authenticated heartbeat (at once, before the promise). False when full. */
  async ingest(hb: Heartbeat, receivedAt: number, sender: Sender = NO_SENDER): Promise<boolean> {
    const key = `${hb.tenant}/${hb.agentId}`;
    if (!this.byId.has(key) && this.byId.size >= this.maxAgents) return false;
    const content: FleetAgent["content"] = {};
    for (const c of hb.content) {
      content[c.type] = {
        version: c.version,
        bad: c.badVersions,
        crashes: c.crashes,
        rolledBackFrom: c.rollbacks.flatMap((r) => (r.from === null ? [] : [r.from])),
        state: c.handlerState,
      };
    }
    this.byId.set(key, {
      id: key,
      tenant: hb.tenant,
      group: hb.group,
      receivedAt,
      health: hb.health,
      content,
      rejected: hb.rejected,
      enrolled: sender.enrolled,
      vendor: sender.vendor,
      pinned: pinnedTypes(hb),
    });
    this.received++;
    return true;
  }

  /** The latest record of one agent (the server compares a heartbeat with the one before). */
  async get(tenant: string, agentId: string): Promise<FleetAgent | undefined> {
    return this.byId.get(`${tenant}/${agentId}`);
  }

  async groupHealth(q: GateQuery): Promise<GroupHealth> {
    return groupHealth(this.byId.values(), q);
  }

  async activeByGroup(activeSince: number): Promise<Map<string, number>> {
    const perGroup = new Map<string, number>();
    for (const a of this.byId.values()) {
      if (a.receivedAt >= activeSince) perGroup.set(a.group, (perGroup.get(a.group) ?? 0) + 1);
    }
    return perGroup;
  }

  async activeTenants(activeSince: number): Promise<TenantActivity[]> {
    const out = new Map<string, TenantActivity>();
    for (const a of this.byId.values()) {
      if (a.receivedAt < activeSince) continue;
      const k = `${a.group}\u0000${a.tenant}`;
      const t = out.get(k) ?? {
        group: a.group,
        tenant: a.tenant,
        vendor: !!a.vendor,
        active: 0,
        enrolled: 0,
      };
      out.set(k, t);
      t.active++;
      if (a.enrolled) t.enrolled++;
    }
    return [...out.values()];
  }

  async count(): Promise<number> {
    return this.byId.size;
  }

  async list(): Promise<FleetAgent[]> {
    return [...this.byId.values()];
  }

  static load(file: string, maxAgents?: number): FleetRegistry {
    const reg = new FleetRegistry(maxAgents);
    if (!existsSync(file)) return reg;
    let snap: z.infer<typeof SnapshotSchema>;
    try {
      snap = SnapshotSchema.parse(JSON.parse(readFileSync(file, "utf8")));
    } catch (e) {
      throw new StoreError(
        "REL_FLEET_CORRUPT",
        `${file}: unreadable fleet snapshot (${(e as Error).message})`,
        {
          file,
          cause: e,
        },
      );
    }
    for (const a of snap.agents) reg.byId.set(a.id, a);
    return reg;
  }
}
