/**
 * The telemetry report's wire contract, shared by the agent that builds it
 * (handlers/TELEMSUP/report.ts) and the fleet service that receives it
 * (fleet/telemetry). Strict at every level: a field that is not here is
 * never sent and never accepted. docs/telemetry.md lists every field.
 */
import { z } from "zod";
import { lazySchema } from "../schema/lazy-schema.ts";

export const REPORT_SCHEMA = "outpost.telemetry/1";

const Name = lazySchema(() => z.string().max(128));
const Count = lazySchema(() => z.number().finite().min(0));

export const RuleRow = lazySchema(() =>
  z
    .object({
      rule: Name,
      calls: Count,
      timeMs: Count,
      maxMs: Count,
      faults: Count,
      limitFaults: Count,
      detections: Count,
      disabled: z.boolean(),
    })
    .strict(),
);

export const QueryRow = lazySchema(() =>
  z
    .object({
      query: Name,
      runs: Count,
      rows: Count,
      wallMsTotal: Count,
      errors: Count,
      watchdogKills: Count,
      denylisted: z.boolean(),
    })
    .strict(),
);

export const MetricRow = lazySchema(() =>
  z
    .object({
      name: Name,
      labels: z.record(z.string().max(32), z.string().max(64)),
      value: z.number().finite(),
    })
    .strict(),
);

export const ReportSchema = lazySchema(() =>
  z
    .object({
      schema: z.literal(REPORT_SCHEMA),
      /** Random per report; also the upload's idempotency key suffix. */
      reportId: z.string().uuid(),
      /** The agent's random id (STATE/agent-id), never the host name. */
      agentId: z.string().max(64),
      agentVersion: z.string().max(64),
      updateGroup: z.string().max(64),
      periodStart: z.string().datetime(),
      periodEnd: z.string().datetime(),
      health: z.enum(["green", "amber", "red"]),
      content: z
        .array(
          z
            .object({ type: Name, version: z.number().int().nullable(), handlerState: z.string().max(32) })
            .strict(),
        )
        .max(64),
      rules: z.array(RuleRow).max(5000),
      queries: z.array(QueryRow).max(5000),
      hosts: z
        .array(
          z
            .object({
              group: Name,
              state: z.string().max(32),
              restarts: Count,
              crashesInWindow: Count,
              rssBytes: Count.nullable(),
            })
            .strict(),
        )
        .max(64),
      /** Counters and gauges from /metrics, allow-listed by name and label key. */
      metrics: z.array(MetricRow).max(2000),
      /** Health changes during the period: codes and levels, never messages (they can name files). */
      healthHistory: z
        .array(
          z
            .object({
              at: z.string().datetime(),
              change: z.enum(["raised", "updated", "cleared"]),
              source: Name,
              level: z.enum(["red", "amber", "info"]),
              code: Name,
            })
            .strict(),
        )
        .max(1000),
    })
    .strict(),
);

export type TelemetryReport = z.infer<typeof ReportSchema>;
