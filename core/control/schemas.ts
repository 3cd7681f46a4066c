/**
 * The control plane's wire shapes as zod schemas: the OpenAPI document is
 * generated from them, path parameters are validated with them, and the
 * type assertions at the bottom keep them identical to the AgentApi types
 * in core/agent/api.ts — a field added there without a schema here fails
 * `tsc`, so the published document cannot silently drift from what
 * `GET /v1/status` returns.
 */
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
import { z } from "../schema/zod.ts";
import { doc, named } from "./openapi-document.ts";

const isoTime = (description: string) =>
  doc(z.string(), { description, format: "date-time", example: "2024-07-19T04:09:00.000Z" });

export const ErrorBodySchema = lazySchema(() =>
  named(
    "Error",
    z.object({
      error: z.object({
        code: doc(z.string(), {
          description: "UPPER_SNAKE error code (docs/error-codes.md)",
          example: "STORE_NO_LKG",
        }),
        message: doc(z.string(), { description: "What failed and why, naming the file" }),
        file: doc(z.optional(z.string()), { description: "The file the error concerns, when there is one" }),
      }),
    }),
    { description: "Every failure, on every route" },
  ),
);

export const HealthSchema = lazySchema(() =>
  named("Health", z.enum(["green", "amber", "red"]), {
    description: "red: protection impaired; amber: degraded; green: all good",
  }),
);

export const RejectionRecordSchema = lazySchema(() =>
  named(
    "RejectionRecord",
    z.object({
      at: isoTime("When the rejection happened"),
      type: doc(z.optional(z.string()), { description: "Content type, when known" }),
      file: doc(z.string(), { description: "The file that was rejected (package, index, signature)" }),
      code: doc(z.string(), { example: "SIG_EXPIRED" }),
      reason: z.string(),
    }),
  ),
);

export const CrashInfoSchema = lazySchema(() =>
  named(
    "CrashInfo",
    z.object({
      at: isoTime("When the host ended"),
      pid: z.int(),
      reason: doc(z.string(), {
        description: "crashed, memory-limit, cpu-limit, protocol, unresponsive, exited",
        example: "crashed",
      }),
      detail: z.string(),
      code: doc(z.nullable(z.int()), { description: "Exit code, when it exited" }),
      signal: doc(z.nullable(z.string()), { description: "Signal name, when killed", example: "SIGSEGV" }),
      during: doc(z.string(), { description: "What the host was doing", example: "call Hmpa_data.check" }),
      stderrTail: doc(z.array(z.string()), { description: "Last lines the host wrote to stderr" }),
    }),
  ),
);

const HostStateSchema = lazySchema(() =>
  z.enum(["stopped", "starting", "running", "restarting", "crash-looping", "in-process"]),
);

export const HostStatusSchema = lazySchema(() =>
  named(
    "HostStatus",
    z.object({
      group: doc(z.string(), { example: "hmpa" }),
      process: doc(z.optional(z.string()), {
        description:
          "The host process this group shares with other groups (identical allowances); absent when it has its own",
        example: "shared",
      }),
      isolation: z.enum(["process", "in-process"]),
      state: realSchema(HostStateSchema),
      pid: z.nullable(z.int()),
      uid: z.nullable(z.int()),
      user: z.nullable(z.string()),
      handlers: z.array(z.string()),
      restarts: z.int(),
      crashesInWindow: z.int(),
      lastCrash: z.nullable(realSchema(CrashInfoSchema)),
      startedAt: z.nullable(z.string()),
      layers: doc(
        z.object({
          uidDrop: z.boolean(),
          capabilities: z.boolean(),
          netns: z.boolean(),
          landlockFs: z.boolean(),
          landlockNet: z.boolean(),
          landlockScope: z.boolean(),
          rlimits: z.boolean(),
          noNewPrivs: z.boolean(),
          memory: z.enum(["cgroup", "watchdog", "none"]),
          stateView: z.optional(z.enum(["hidden", "secrets-masked", "none"])),
        }),
        { description: "Which enforcement layers are in force for this host right now" },
      ),
      notes: doc(z.array(z.string()), { description: "Why a layer is off or weaker than it could be" }),
      limits: z.object({ memoryBytes: z.number(), cpuSeconds: z.number() }),
      usage: z.nullable(z.object({ rssBytes: z.number(), cpuSeconds: z.number() })),
    }),
    {
      description: "One host group's process, its sandbox and its supervision record",
    },
  ),
);

export const PolicyStatusSchema = lazySchema(() =>
  named(
    "PolicyStatus",
    z.object({
      cadence: z.enum(["early", "general", "pinned-n-1"]),
      assignedGroup: z.string(),
      group: doc(z.string(), { description: "The group actually polled" }),
      earlyGroup: z.nullable(z.string()),
      pins: z.record(z.string(), z.int()),
      content: z.array(
        z.object({
          type: z.string(),
          installed: z.nullable(z.int()),
          offered: z.int(),
          previous: z.nullable(z.int()),
          target: z.nullable(z.int()),
          held: z.nullable(z.string()),
        }),
      ),
    }),
    { description: "Administrator content policy and what it targets" },
  ),
);

export const ContentInfoSchema = lazySchema(() =>
  named(
    "ContentInfo",
    z.object({
      type: doc(z.string(), { example: "Hmpa_data" }),
      version: doc(z.nullable(z.int()), { description: "Active version; null when none" }),
      signingTime: doc(z.nullable(z.string()), { description: "CMS signingTime of the active version" }),
      sha384: doc(z.nullable(z.string()), { description: "SHA-384 (hex) of the active package" }),
      installedAt: z.nullable(z.string()),
      lkgVersion: doc(z.nullable(z.int()), { description: "Last-known-good version kept for rollback" }),
      handlerState: z.enum(["loaded", "not-installed", "failed", "unloaded", "crash-looping"]),
      handlerStatus: doc(z.optional(z.record(z.string(), z.unknown())), {
        description: "What the handler reports about its loaded content (handler-specific)",
      }),
      handlerError: doc(z.optional(z.object({ code: z.string(), message: z.string() })), {
        description: "Why the handler failed, when handlerState is failed",
      }),
      badVersions: doc(z.array(z.int()), { description: "Versions that will not be installed again" }),
      host: doc(
        z.optional(
          z.object({
            group: z.string(),
            process: doc(z.optional(z.string()), {
              description: "The process the group shares with other groups; absent when it has its own",
            }),
            isolation: z.enum(["process", "in-process"]),
            pid: z.nullable(z.int()),
            hostState: realSchema(HostStateSchema),
            restarts: z.int(),
            lastCrash: z.nullable(realSchema(CrashInfoSchema)),
          }),
        ),
        { description: "The host process serving this handler" },
      ),
    }),
  ),
);

export const AckResultSchema = lazySchema(() =>
  named(
    "AckResult",
    z.object({
      type: doc(z.string(), { example: "Hmpa_data" }),
      acknowledged: doc(
        z.nullable(
          z.object({
            from: z.nullable(z.int()),
            to: z.int(),
            reason: z.string(),
            at: z.string(),
          }),
        ),
        { description: "The automatic rollback acknowledged; null when there was none" },
      ),
    }),
  ),
);

export const UpdateCycleReportSchema = lazySchema(() =>
  named(
    "UpdateCycleReport",
    z.object({
      startedAt: isoTime("Cycle start"),
      finishedAt: isoTime("Cycle end"),
      group: z.string(),
      repo: z.string(),
      index: z.enum(["updated", "not-modified", "failed"]),
      serial: z.nullable(z.int()),
      installed: z.array(
        z.object({
          type: z.string(),
          version: z.int(),
          previousVersion: z.nullable(z.int()),
        }),
      ),
      unchanged: z.array(z.string()),
      rejected: z.array(realSchema(RejectionRecordSchema)),
      ok: z.boolean(),
      retryAfterSeconds: doc(z.optional(z.number()), {
        description: "Set when the repository asked the agent to come back later",
      }),
    }),
  ),
);

export const AgentStatusSchema = lazySchema(() =>
  named(
    "AgentStatus",
    z.object({
      agent: z.object({
        version: z.string(),
        commit: z.string(),
        pid: z.int(),
        startedAt: isoTime("Agent start"),
        uptimeSeconds: z.number(),
      }),
      health: realSchema(HealthSchema),
      healthReasons: doc(z.array(z.string()), { description: "Why health is not green, worst first" }),
      healthDetails: doc(
        z.optional(
          z.array(
            z.object({
              source: z.string(),
              level: z.enum(["red", "amber", "info"]),
              code: z.string(),
              message: z.string(),
              since: z.string(),
              updatedAt: z.string(),
              until: z.optional(z.string()),
              ack: z.optional(z.boolean()),
            }),
          ),
        ),
        { description: "Reasons raised on the health board by any feature (info level included)" },
      ),
      update: z.object({
        repo: z.string(),
        group: z.string(),
        lastAttempt: z.nullable(z.string()),
        lastSuccess: z.nullable(z.string()),
        nextRun: z.nullable(z.string()),
        lastSerial: z.nullable(z.int()),
        consecutiveFailures: z.int(),
      }),
      content: doc(z.array(realSchema(ContentInfoSchema)), {
        description: "One entry per registered content type",
      }),
      lastErrors: doc(z.array(realSchema(RejectionRecordSchema)), { description: "Most recent first" }),
      hosts: doc(z.optional(z.array(realSchema(HostStatusSchema))), {
        description: "Host processes by group",
      }),
      policy: z.optional(realSchema(PolicyStatusSchema)),
      sensors: doc(z.optional(z.record(z.string(), z.unknown())), {
        description:
          "Kernel sensors (docs/sensors.md): process and file sensor in use and why, events/s, bus consumers " +
          "with drop counters, and onAccess (mode, cache hit rate, fail-open count, deferred lookups)",
      }),
      software: doc(z.optional(z.record(z.string(), z.unknown())), {
        description:
          "A/B software slots (docs/install.md): enabled, the running executable, current and other slot, " +
          "restartPending, the last switch record (state, reason, bad builds) and the last AgentSoftware content",
      }),
      effective: doc(z.optional(z.record(z.string(), z.unknown())), {
        description:
          "Effective configuration (docs/policy.md): flags (name → on/off), feature gates (key, flag, wanted, " +
          "value in force, state) and, per service following it, the settings applied and the last change refused",
      }),
      exclusions: doc(
        z.optional(
          z.object({
            count: z.int(),
            hash: z.string(),
            bySource: z.record(z.string(), z.int()),
            refused: z.int(),
            shadowed: z.int(),
            updatedAt: z.nullable(z.string()),
            held: z.optional(z.record(z.string(), z.string())),
          }),
        ),
        {
          description:
            "Exclusions the agent honours, in brief (docs/exclusions.md): count, SHA-256 of the list, per source, producers whose rules are held inert (with the code); `agent exclusions` lists them",
        },
      ),
    }),
  ),
);

export const AgentEventSchema = lazySchema(() =>
  named(
    "AgentEvent",
    z.catchall(
      z.object({
        type: doc(z.string(), { example: "content-installed" }),
        at: isoTime("When the agent emitted the event"),
      }),
      z.unknown(),
    ),
    {
      description:
        "One SSE `data:` line; fields beyond type and at depend on the type (docs/control-plane.md)",
    },
  ),
);

export const HandlerResultSchema = lazySchema(() =>
  named(
    "HandlerResult",
    z.object({
      result: doc(z.unknown(), { description: "The handler method's JSON result (null for none)" }),
    }),
  ),
);

export const HealthProbeSchema = lazySchema(() =>
  named("HealthProbe", z.object({ status: z.literal("ok") })),
);

/** Same shapes the handler contract allows for names, so nothing odd reaches the agent from a URL. */
export const CONTENT_TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
export const METHOD_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export const contentTypeParam = doc(z.string().check(z.regex(CONTENT_TYPE_PATTERN, "invalid content type")), {
  example: "Hmpa_data",
});

export const methodParam = doc(z.string().check(z.regex(METHOD_PATTERN, "invalid handler method")), {
  example: "check",
});

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
