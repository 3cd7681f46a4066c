/**
 * The vendor's view of the fleet: the latest heartbeat of every agent, kept
 * compact in memory by `contentctl serve` and snapshotted to
 * STATE/fleet.json (atomically) so `release status` / `release tick` in
 * another process, and a restarted server, see the same picture.
 */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import type { Heartbeat } from "../core/agent/heartbeat-protocol.ts";
import { StoreError } from "../core/errors.ts";
import { atomicWriteJson } from "../core/fsutil.ts";
import { type FleetAgent, type GroupHealth, groupHealth } from "./health.ts";

export interface FleetView {
  agents(): Iterable<FleetAgent>;
}

const SnapshotSchema = z
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
  .strict();

export class FleetRegistry implements FleetView {
  private readonly byId = new Map<string, FleetAgent>();
  private dirty = false;
  /** Heartbeats accepted since start (for the console and the simulation's origin figures). */
  received = 0;

  constructor(private readonly maxAgents = 2_000_000) {}

  get size(): number {
    return this.byId.size;
  }

  agents(): Iterable<FleetAgent> {
    return this.byId.values();
  }

  /** Stores an already validated and authenticated heartbeat. False when the registry is full. */
  ingest(
    hb: Heartbeat,
    receivedAt: number,
    sender: { enrolled: boolean; vendor: boolean } = { enrolled: false, vendor: false },
  ): boolean {
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
      pinned: hb.policy ? (hb.policy.cadence === "pinned-n-1" ? ["*"] : hb.policy.pinned) : [],
    });
    this.received++;
    this.dirty = true;
    return true;
  }

  /** The latest record of one agent (the server compares a heartbeat with the one before). */
  get(tenant: string, agentId: string): FleetAgent | undefined {
    return this.byId.get(`${tenant}/${agentId}`);
  }

  health(q: Parameters<typeof groupHealth>[1]): GroupHealth {
    return groupHealth(this.byId.values(), q);
  }

  /** Writes the snapshot if anything changed since the last one. */
  save(file: string, now: Date): boolean {
    if (!this.dirty) return false;
    atomicWriteJson(file, { schema: 1, savedAt: now.toISOString(), agents: [...this.byId.values()] }, 0o600);
    this.dirty = false;
    return true;
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
