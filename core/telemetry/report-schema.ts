/**
 * The telemetry report's wire contract, shared by the agent that builds it
 * (handlers/TELEMSUP/report.ts) and the fleet service that receives it
 * (fleet/telemetry). Strict at every level: a field that is not here is
 * never sent and never accepted. docs/telemetry.md lists every field.
 */

import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

export const REPORT_SCHEMA = "outpost.telemetry/1";

const Name = lazySchema(() => z.string().check(z.maxLength(128)));
const Count = lazySchema(() => z.number().check(z.gte(0)));

export const RuleRow = lazySchema(() =>
  z.strictObject({
    rule: Name,
    calls: Count,
    timeMs: Count,
    maxMs: Count,
    faults: Count,
    limitFaults: Count,
    detections: Count,
    disabled: z.boolean(),
  }),
);

export const QueryRow = lazySchema(() =>
  z.strictObject({
    query: Name,
    runs: Count,
    rows: Count,
    wallMsTotal: Count,
    errors: Count,
    watchdogKills: Count,
    denylisted: z.boolean(),
  }),
);

export const MetricRow = lazySchema(() =>
  z.strictObject({
    name: Name,
    labels: z.record(z.string().check(z.maxLength(32)), z.string().check(z.maxLength(64))),
    value: z.number(),
  }),
);

export const ReportSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(REPORT_SCHEMA),
    /** Random per report; also the upload's idempotency key suffix. */
    reportId: z.uuid(),
    /** The agent's random id (STATE/agent-id), never the host name. */
    agentId: z.string().check(z.maxLength(64)),
    agentVersion: z.string().check(z.maxLength(64)),
    updateGroup: z.string().check(z.maxLength(64)),
    periodStart: z.iso.datetime(),
    periodEnd: z.iso.datetime(),
    health: z.enum(["green", "amber", "red"]),
    content: z
      .array(
        z.strictObject({
          type: Name,
          version: z.nullable(z.int()),
          handlerState: z.string().check(z.maxLength(32)),
        }),
      )
      .check(z.maxLength(64)),
    rules: z.array(RuleRow).check(z.maxLength(5000)),
    queries: z.array(QueryRow).check(z.maxLength(5000)),
    hosts: z
      .array(
        z.strictObject({
          group: Name,
          state: z.string().check(z.maxLength(32)),
          restarts: Count,
          crashesInWindow: Count,
          rssBytes: z.nullable(Count),
        }),
      )
      .check(z.maxLength(64)),
    /** Counters and gauges from /metrics, allow-listed by name and label key. */
    metrics: z.array(MetricRow).check(z.maxLength(2000)),
    /** Health changes during the period: codes and levels, never messages (they can name files). */
    healthHistory: z
      .array(
        z.strictObject({
          at: z.iso.datetime(),
          change: z.enum(["raised", "updated", "cleared"]),
          source: Name,
          level: z.enum(["red", "amber", "info"]),
          code: Name,
        }),
      )
      .check(z.maxLength(1000)),
  }),
);

export type TelemetryReport = z.infer<typeof ReportSchema>;
