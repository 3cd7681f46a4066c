/**
 * The control plane's wire shapes as zod schemas: the OpenAPI document is
 * generated from them, path parameters are validated with them, and the
 * type assertions at the bottom keep them identical to the AgentApi types
 * in core/agent/api.ts — a field added there without a schema here fails
 * `tsc`, so the published document cannot silently drift from what
 * `GET /v1/status` returns.
 */
import { z } from "@hono/zod-openapi";
import type {
  AckResult,
  AgentStatus,
  ContentInfo,
  CrashInfo,
  HostStatus,
  RejectionRecord,
  UpdateCycleReport,
} from "../agent/api.ts";
import type { PolicyStatus } from "../agent/policy.ts";
import { lazySchema, realSchema } from "../schema/lazy-schema.ts";

const isoTime = (description: string) =>
  z.string().openapi({ description, format: "date-time", example: "2024-07-19T04:09:00.000Z" });

export const ErrorBodySchema = lazySchema(() =>
  z
    .object({
      error: z.object({
        code: z.string().openapi({
          description: "UPPER_SNAKE error code (docs/error-codes.md)",
          example: "STORE_NO_LKG",
        }),
        message: z.string().openapi({ description: "What failed and why, naming the file" }),
        file: z
          .string()
          .optional()
          .openapi({ description: "The file the error concerns, when there is one" }),
      }),
    })
    .openapi("Error", { description: "Every failure, on every route" }),
);

export const HealthSchema = lazySchema(() =>
  z
    .enum(["green", "amber", "red"])
    .openapi("Health", { description: "red: protection impaired; amber: degraded; green: all good" }),
);

export const RejectionRecordSchema = lazySchema(() =>
  z
    .object({
      at: isoTime("When the rejection happened"),
      type: z.string().optional().openapi({ description: "Content type, when known" }),
      file: z.string().openapi({ description: "The file that was rejected (package, index, signature)" }),
      code: z.string().openapi({ example: "SIG_EXPIRED" }),
      reason: z.string(),
    })
    .openapi("RejectionRecord"),
);

export const CrashInfoSchema = lazySchema(() =>
  z
    .object({
      at: isoTime("When the host ended"),
      pid: z.number().int(),
      reason: z.string().openapi({
        description: "crashed, memory-limit, cpu-limit, protocol, unresponsive, exited",
        example: "crashed",
      }),
      detail: z.string(),
      code: z.number().int().nullable().openapi({ description: "Exit code, when it exited" }),
      signal: z.string().nullable().openapi({ description: "Signal name, when killed", example: "SIGSEGV" }),
      during: z.string().openapi({ description: "What the host was doing", example: "call Hmpa_data.check" }),
      stderrTail: z.array(z.string()).openapi({ description: "Last lines the host wrote to stderr" }),
    })
    .openapi("CrashInfo"),
);

const HostStateSchema = lazySchema(() =>
  z.enum(["stopped", "starting", "running", "restarting", "crash-looping", "in-process"]),
);

export const HostStatusSchema = lazySchema(() =>
  z
    .object({
      group: z.string().openapi({ example: "hmpa" }),
      process: z.string().optional().openapi({
        description:
          "The host process this group shares with other groups (identical allowances); absent when it has its own",
        example: "shared",
      }),
      isolation: z.enum(["process", "in-process"]),
      state: realSchema(HostStateSchema),
      pid: z.number().int().nullable(),
      uid: z.number().int().nullable(),
      user: z.string().nullable(),
      handlers: z.array(z.string()),
      restarts: z.number().int(),
      crashesInWindow: z.number().int(),
      lastCrash: realSchema(CrashInfoSchema).nullable(),
      startedAt: z.string().nullable(),
      layers: z
        .object({
          uidDrop: z.boolean(),
          capabilities: z.boolean(),
          netns: z.boolean(),
          landlockFs: z.boolean(),
          landlockNet: z.boolean(),
          landlockScope: z.boolean(),
          rlimits: z.boolean(),
          noNewPrivs: z.boolean(),
          memory: z.enum(["cgroup", "watchdog", "none"]),
          stateView: z.enum(["hidden", "secrets-masked", "none"]).optional(),
        })
        .openapi({ description: "Which enforcement layers are in force for this host right now" }),
      notes: z.array(z.string()).openapi({ description: "Why a layer is off or weaker than it could be" }),
      limits: z.object({ memoryBytes: z.number(), cpuSeconds: z.number() }),
      usage: z.object({ rssBytes: z.number(), cpuSeconds: z.number() }).nullable(),
    })
    .openapi("HostStatus", {
      description: "One host group's process, its sandbox and its supervision record",
    }),
);

export const PolicyStatusSchema = lazySchema(() =>
  z
    .object({
      cadence: z.enum(["early", "general", "pinned-n-1"]),
      assignedGroup: z.string(),
      group: z.string().openapi({ description: "The group actually polled" }),
      earlyGroup: z.string().nullable(),
      pins: z.record(z.string(), z.number().int()),
      content: z.array(
        z.object({
          type: z.string(),
          installed: z.number().int().nullable(),
          offered: z.number().int(),
          previous: z.number().int().nullable(),
          target: z.number().int().nullable(),
          held: z.string().nullable(),
        }),
      ),
    })
    .openapi("PolicyStatus", { description: "Administrator content policy and what it targets" }),
);

export const ContentInfoSchema = lazySchema(() =>
  z
    .object({
      type: z.string().openapi({ example: "Hmpa_data" }),
      version: z.number().int().nullable().openapi({ description: "Active version; null when none" }),
      signingTime: z.string().nullable().openapi({ description: "CMS signingTime of the active version" }),
      sha384: z.string().nullable().openapi({ description: "SHA-384 (hex) of the active package" }),
      installedAt: z.string().nullable(),
      lkgVersion: z
        .number()
        .int()
        .nullable()
        .openapi({ description: "Last-known-good version kept for rollback" }),
      handlerState: z.enum(["loaded", "not-installed", "failed", "unloaded", "crash-looping"]),
      handlerStatus: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({ description: "What the handler reports about its loaded content (handler-specific)" }),
      handlerError: z
        .object({ code: z.string(), message: z.string() })
        .optional()
        .openapi({ description: "Why the handler failed, when handlerState is failed" }),
      badVersions: z
        .array(z.number().int())
        .openapi({ description: "Versions that will not be installed again" }),
      host: z
        .object({
          group: z.string(),
          process: z.string().optional().openapi({
            description: "The process the group shares with other groups; absent when it has its own",
          }),
          isolation: z.enum(["process", "in-process"]),
          pid: z.number().int().nullable(),
          hostState: realSchema(HostStateSchema),
          restarts: z.number().int(),
          lastCrash: realSchema(CrashInfoSchema).nullable(),
        })
        .optional()
        .openapi({ description: "The host process serving this handler" }),
    })
    .openapi("ContentInfo"),
);

export const AckResultSchema = lazySchema(() =>
  z
    .object({
      type: z.string().openapi({ example: "Hmpa_data" }),
      acknowledged: z
        .object({
          from: z.number().int().nullable(),
          to: z.number().int(),
          reason: z.string(),
          at: z.string(),
        })
        .nullable()
        .openapi({ description: "The automatic rollback acknowledged; null when there was none" }),
    })
    .openapi("AckResult"),
);

export const UpdateCycleReportSchema = lazySchema(() =>
  z
    .object({
      startedAt: isoTime("Cycle start"),
      finishedAt: isoTime("Cycle end"),
      group: z.string(),
      repo: z.string(),
      index: z.enum(["updated", "not-modified", "failed"]),
      serial: z.number().int().nullable(),
      installed: z.array(
        z.object({
          type: z.string(),
          version: z.number().int(),
          previousVersion: z.number().int().nullable(),
        }),
      ),
      unchanged: z.array(z.string()),
      rejected: z.array(realSchema(RejectionRecordSchema)),
      ok: z.boolean(),
      retryAfterSeconds: z
        .number()
        .optional()
        .openapi({ description: "Set when the repository asked the agent to come back later" }),
    })
    .openapi("UpdateCycleReport"),
);

export const AgentStatusSchema = lazySchema(() =>
  z
    .object({
      agent: z.object({
        version: z.string(),
        commit: z.string(),
        pid: z.number().int(),
        startedAt: isoTime("Agent start"),
        uptimeSeconds: z.number(),
      }),
      health: realSchema(HealthSchema),
      healthReasons: z.array(z.string()).openapi({ description: "Why health is not green, worst first" }),
      healthDetails: z
        .array(
          z.object({
            source: z.string(),
            level: z.enum(["red", "amber", "info"]),
            code: z.string(),
            message: z.string(),
            since: z.string(),
            updatedAt: z.string(),
            until: z.string().optional(),
            ack: z.boolean().optional(),
          }),
        )
        .optional()
        .openapi({ description: "Reasons raised on the health board by any feature (info level included)" }),
      update: z.object({
        repo: z.string(),
        group: z.string(),
        lastAttempt: z.string().nullable(),
        lastSuccess: z.string().nullable(),
        nextRun: z.string().nullable(),
        lastSerial: z.number().int().nullable(),
        consecutiveFailures: z.number().int(),
      }),
      content: z
        .array(realSchema(ContentInfoSchema))
        .openapi({ description: "One entry per registered content type" }),
      lastErrors: z.array(realSchema(RejectionRecordSchema)).openapi({ description: "Most recent first" }),
      hosts: z
        .array(realSchema(HostStatusSchema))
        .optional()
        .openapi({ description: "Host processes by group" }),
      policy: realSchema(PolicyStatusSchema).optional(),
      sensors: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({
          description:
            "Kernel sensors (docs/sensors.md): process and file sensor in use and why, events/s, bus consumers " +
            "with drop counters, and onAccess (mode, cache hit rate, fail-open count, deferred lookups)",
        }),
      software: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({
          description:
            "A/B software slots (docs/install.md): enabled, the running executable, current and other slot, " +
            "restartPending, the last switch record (state, reason, bad builds) and the last AgentSoftware content",
        }),
      effective: z
        .record(z.string(), z.unknown())
        .optional()
        .openapi({
          description:
            "Effective configuration (docs/policy.md): flags (name → on/off), feature gates (key, flag, wanted, " +
            "value in force, state) and, per service following it, the settings applied and the last change refused",
        }),
      exclusions: z
        .object({
          count: z.number().int(),
          hash: z.string(),
          bySource: z.record(z.string(), z.number().int()),
          refused: z.number().int(),
          shadowed: z.number().int(),
          updatedAt: z.string().nullable(),
          held: z.record(z.string(), z.string()).optional(),
        })
        .optional()
        .openapi({
          description:
            "Exclusions the agent honours, in brief (docs/exclusions.md): count, SHA-256 of the list, per source, producers whose rules are held inert (with the code); `agent exclusions` lists them",
        }),
    })
    .openapi("AgentStatus"),
);

export const AgentEventSchema = lazySchema(() =>
  z
    .object({
      type: z.string().openapi({ example: "content-installed" }),
      at: isoTime("When the agent emitted the event"),
    })
    .catchall(z.unknown())
    .openapi("AgentEvent", {
      description:
        "One SSE `data:` line; fields beyond type and at depend on the type (docs/control-plane.md)",
    }),
);

export const HandlerResultSchema = lazySchema(() =>
  z
    .object({
      result: z.unknown().openapi({ description: "The handler method's JSON result (null for none)" }),
    })
    .openapi("HandlerResult"),
);

export const HealthProbeSchema = lazySchema(() =>
  z.object({ status: z.literal("ok") }).openapi("HealthProbe"),
);

/** Same shapes the handler contract allows for names, so nothing odd reaches the agent from a URL. */
export const CONTENT_TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
export const METHOD_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export const contentTypeParam = z
  .string()
  .regex(CONTENT_TYPE_PATTERN, "invalid content type")
  .openapi({ param: { name: "type", in: "path" }, example: "Hmpa_data" });

export const methodParam = z
  .string()
  .regex(METHOD_PATTERN, "invalid handler method")
  .openapi({ param: { name: "method", in: "path" }, example: "check" });

/**
 * A route's JSON body of `schema` (or of what `schema()` builds), for a route's `responses`: the
 * schema is built when the OpenAPI document is (the first GET /v1/openapi.json), not when the agent
 * starts — these schemas only describe answers, nothing validates against them. ~1.3 MiB less in
 * the supervisor (compiled, import of this module: 1.3–1.5 → 0.13 MiB).
 */
export function jsonContent<S extends object>(schema: S | (() => S), type = "application/json") {
  return {
    [type]: {
      get schema(): S {
        return realSchema(typeof schema === "function" ? (schema as () => S)() : schema);
      },
    },
  } as Record<string, { schema: S }>;
}

/** Error responses every authenticated route can give. */
export function errorResponses<const S extends number>(...statuses: S[]) {
  const descriptions: Record<number, string> = {
    400: "Bad request (CTL_BAD_REQUEST, CFG_*, HND_*_BAD_ARGS)",
    401: "Missing or wrong bearer token (CTL_UNAUTHORIZED)",
    403: "Host header is not a loopback name (CTL_FORBIDDEN_HOST)",
    404: "Unknown route, content type or handler method",
    409: "Conflict with the agent's state (STORE_NO_LKG, HND_NOT_LOADED, AGENT_LOCKED)",
    413: "Request body over the limit (CTL_BODY_TOO_LARGE)",
    422: "Content rejected (UPD_*, IDX_*, SIG_*, PKG_*)",
    500: "Internal error",
    503: "Temporarily unavailable (CTL_TOO_MANY_STREAMS, CTL_NOT_AVAILABLE)",
  };
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      {
        description: descriptions[s] ?? "Error",
        content: jsonContent(ErrorBodySchema),
      },
    ]),
  ) as Record<
    S,
    { description: string; content: { "application/json": { schema: typeof ErrorBodySchema } } }
  >;
}

/** The statuses any token-protected route may answer with besides its own. */
export const COMMON_ERRORS = [401, 403, 500] as const;

// ---- Schema ⇔ api.ts agreement (compile time) ------------------------------------------------

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(_: T): void => {};
agree<Same<z.infer<typeof AgentStatusSchema>, AgentStatus>>(true);
agree<Same<z.infer<typeof ContentInfoSchema>, ContentInfo>>(true);
agree<Same<z.infer<typeof UpdateCycleReportSchema>, UpdateCycleReport>>(true);
agree<Same<z.infer<typeof RejectionRecordSchema>, RejectionRecord>>(true);
agree<Same<z.infer<typeof HostStatusSchema>, HostStatus>>(true);
agree<Same<z.infer<typeof CrashInfoSchema>, CrashInfo>>(true);
agree<Same<z.infer<typeof PolicyStatusSchema>, PolicyStatus>>(true);
agree<Same<z.infer<typeof AckResultSchema>, AckResult>>(true);
