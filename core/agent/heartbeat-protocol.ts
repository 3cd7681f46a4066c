/**
 * The fleet heartbeat: what an agent tells the vendor after each update
 * cycle (and at once after a rollback), so staged rollouts can be gated on
 * what the fleet actually experiences. Small on purpose — versions, health,
 * crash and rollback facts, rejection counts; no host inventory — and
 * validated strictly at the server's edge. Unknown top-level fields from
 * newer agents are dropped, not refused.
 */

import { ExclusionSummaryWireSchema } from "../exclusions/report.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

export const HEARTBEAT_PATH = "/fleet/heartbeat";
/** A heartbeat is well under 2 KiB for a dozen content types; the server refuses more than this. */
export const MAX_HEARTBEAT_BYTES = 16 * 1024;

export const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
const GROUP_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;
const TYPE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const version = lazySchema(() => z.int().check(z.nonnegative(), z.lte(Number.MAX_SAFE_INTEGER)));
const count = lazySchema(() => z.int().check(z.nonnegative(), z.lte(1_000_000_000)));

export const HeartbeatContentSchema = lazySchema(() =>
  z.strictObject({
    type: z.string().check(z.regex(TYPE_RE)),
    /** Installed version, null when none. */
    version: z.nullable(version),
    handlerState: z.string().check(z.maxLength(32)),
    /** Versions this agent refuses to reinstall (crash loop, failed load, admin rollback). */
    badVersions: z.array(version).check(z.maxLength(32)),
    /** Handler crashes since the installed version went live. */
    crashes: count,
    /** Recent rollbacks, newest last. */
    rollbacks: z
      .array(
        z.strictObject({
          from: z.nullable(version),
          to: version,
          at: z.iso.datetime(),
          automatic: z.boolean(),
        }),
      )
      .check(z.maxLength(8)),
  }),
);

export const HeartbeatSchema = lazySchema(() =>
  z.object({
    schema: z.literal(1),
    /** Random per install (STATE/agent-id); not derived from the host. */
    agentId: z.string().check(z.regex(/^[A-Za-z0-9-]{8,64}$/)),
    tenant: z.string().check(z.regex(TENANT_RE)),
    /** The group the agent polls (after its policy). */
    group: z.string().check(z.regex(GROUP_RE)),
    agentVersion: z.string().check(z.maxLength(64)),
    sentAt: z.iso.datetime(),
    health: z.enum(["green", "amber", "red"]),
    content: z.array(HeartbeatContentSchema).check(z.maxLength(64)),
    /** Updates rejected since the agent started. */
    rejected: count,
    lastRejections: z
      .array(
        z.strictObject({
          type: z.optional(z.string().check(z.regex(TYPE_RE))),
          code: z.string().check(z.maxLength(64)),
        }),
      )
      .check(z.maxLength(8)),
    /** The agent's exclusions in brief (core/exclusions/report.ts); the full list only on request. */
    exclusions: z.optional(ExclusionSummaryWireSchema),
    /**
     * Enrolled agents: strictly increasing per agent (replays are refused). The
     * agent uses max(last + 1, milliseconds since the epoch), so it needs no
     * counter on disk and a restart never goes back.
     */
    seq: z.optional(z.int().check(z.positive(), z.lte(Number.MAX_SAFE_INTEGER))),
    /**
     * The administrator's content policy, so the health gate can leave out
     * agents that hold a version on purpose (pinned N-1 or a pin): they never
     * adopt a new release and would otherwise hold it forever.
     */
    policy: z.optional(
      z.strictObject({
        cadence: z.enum(["early", "general", "pinned-n-1"]),
        pinned: z.array(z.string().check(z.regex(TYPE_RE))).check(z.maxLength(64)),
      }),
    ),
  }),
);

export type Heartbeat = z.infer<typeof HeartbeatSchema>;
export type HeartbeatContent = z.infer<typeof HeartbeatContentSchema>;
