/**
 * Exclusion reports to the fleet service ("reported back for informational
 * display"). Two steps, so the common case costs nothing: every heartbeat
 * carries the summary (count + hash of the effective list); when the fleet
 * does not hold the list with that hash it answers the heartbeat with
 * `{ "want": ["exclusions"] }`, and the agent POSTs the full list once to
 * EXCLUSIONS_PATH with `Idempotency-Key: <agentId>:<hash>` — a retry of the
 * same list is stored once. Validated with zod at the fleet's edge.
 */
import { z } from "zod";
import { EXCLUSION_KINDS, EXCLUSION_SCOPES } from "../exclusions-config.ts";
import { lazySchema } from "../schema/lazy-schema.ts";

export const EXCLUSIONS_PATH = "/fleet/exclusions";
/** 100k exclusions of ~150 bytes: the largest list a report may carry. */
export const MAX_EXCLUSION_REPORT_BYTES = 32 * 1024 * 1024;

export const ExclusionSummaryWireSchema = lazySchema(() =>
  z
    .object({
      count: z.number().int().nonnegative().max(1_000_000),
      hash: z.string().regex(/^[0-9a-f]{64}$/),
      bySource: z.record(z.string().max(32), z.number().int().nonnegative()).optional(),
    })
    .strict(),
);

export const ExclusionReportSchema = lazySchema(() =>
  z
    .object({
      schema: z.literal(1),
      agentId: z.string().regex(/^[A-Za-z0-9-]{8,64}$/),
      tenant: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/),
      sentAt: z.iso.datetime(),
      summary: ExclusionSummaryWireSchema,
      exclusions: z
        .array(
          z
            .object({
              kind: z.enum(EXCLUSION_KINDS),
              value: z.string().min(1).max(4096),
              scope: z.array(z.enum(EXCLUSION_SCOPES)).min(1).max(4),
              reason: z.string().max(512),
              source: z.string().max(200),
            })
            .strict(),
        )
        .max(200_000),
    })
    .strict(),
);
export type ExclusionReport = z.infer<typeof ExclusionReportSchema>;
