/**
 * Exclusion reports to the fleet service ("reported back for informational
 * display"). Two steps, so the common case costs nothing: every heartbeat
 * carries the summary (count + hash of the effective list); when the fleet
 * does not hold the list with that hash it answers the heartbeat with
 * `{ "want": ["exclusions"] }`, and the agent POSTs the full list once to
 * EXCLUSIONS_PATH with `Idempotency-Key: <agentId>:<hash>` — a retry of the
 * same list is stored once. Validated with zod at the fleet's edge.
 */

import { EXCLUSION_KINDS, EXCLUSION_SCOPES } from "../exclusions-config.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

export const EXCLUSIONS_PATH = "/fleet/exclusions";
/** 100k exclusions of ~150 bytes: the largest list a report may carry. */
export const MAX_EXCLUSION_REPORT_BYTES = 32 * 1024 * 1024;

export const ExclusionSummaryWireSchema = lazySchema(() =>
  z.strictObject({
    count: z.int().check(z.nonnegative(), z.lte(1_000_000)),
    hash: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
    bySource: z.optional(z.record(z.string().check(z.maxLength(32)), z.int().check(z.nonnegative()))),
  }),
);

export const ExclusionReportSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    agentId: z.string().check(z.regex(/^[A-Za-z0-9-]{8,64}$/)),
    tenant: z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,63}$/)),
    sentAt: z.iso.datetime(),
    summary: ExclusionSummaryWireSchema,
    exclusions: z
      .array(
        z.strictObject({
          kind: z.enum(EXCLUSION_KINDS),
          value: z.string().check(z.minLength(1), z.maxLength(4096)),
          scope: z.array(z.enum(EXCLUSION_SCOPES)).check(z.minLength(1), z.maxLength(4)),
          reason: z.string().check(z.maxLength(512)),
          source: z.string().check(z.maxLength(200)),
        }),
      )
      .check(z.maxLength(200_000)),
  }),
);
export type ExclusionReport = z.infer<typeof ExclusionReportSchema>;
