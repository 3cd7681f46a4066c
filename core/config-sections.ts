/**
 * The sections of agent.json and their schemas (zod, validated at the edge). core/config.ts
 * assembles them into AgentConfigSchema and parses config files with them.
 */

import { ExclusionsConfigSchema } from "./exclusions-config.ts";
import { IdleStopSchema } from "./idle-stop-config.ts";
import { IpsConfigSchema } from "./ips-config.ts";
import { LogFilesConfigSchema, SelfHelpConfigSchema } from "./logs/config.ts";
import { MlConfigSchema } from "./ml-config.ts";
import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";
import { OnAccessSchema, SensorsSchema } from "./sensors-config.ts";
import { SinkQueueSettingsSchema } from "./sink-queue-config.ts";
import { SoftwareConfigSchema } from "./software-config.ts";
import { TelemetryConfigSchema } from "./telemetry/config.ts";

/**
 * The sections of agent.json, each built on first use (core/schema/lazy-schema.ts): parseConfig
 * builds only the sections a file names and takes the others from CONFIG_DEFAULTS.
 */
export const SECTIONS = {
  stateDir: lazySchema(() => z._default(z.string().check(z.minLength(1)), "/var/lib/outpost")),
  update: lazySchema(() =>
    z.prefault(
      z.strictObject({
        /** Folder path or http(s) URL of the content repository. */
        repo: z._default(z.string().check(z.minLength(1)), "http://127.0.0.1:8080"),
        group: z._default(z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,63}$/)), "public-1"),
        /** PEM bundle of trusted root certificates. */
        trust: z._default(z.string().check(z.minLength(1)), "/etc/outpost/root.pem"),
        intervalSeconds: z._default(z.int().check(z.gte(10)), 3600),
        /** ± fraction of the interval added at random to each wait, so a fleet does not poll in lock-step. */
        jitter: z._default(z.number().check(z.gte(0), z.lte(0.5)), 0.1),
        maxBackoffSeconds: z._default(z.int().check(z.gte(10)), 6 * 3600),
        indexMaxBytes: z._default(z.int().check(z.positive()), 1024 * 1024),
        timeoutSeconds: z._default(z.number().check(z.positive()), 60),
        /** A transfer that delivers fewer bytes per second than this (over a 10 s window) is aborted. */
        minBytesPerSecond: z._default(z.int().check(z.gte(0)), 1024),
        enabled: z._default(z.boolean(), true),
      }),
      {},
    ),
  ),
  control: lazySchema(() =>
    z.prefault(
      z.strictObject({
        host: z._default(z.string(), "127.0.0.1"),
        port: z._default(z.int().check(z.gte(0), z.lte(65535)), 0),
        /** Binding anything but loopback must be asked for explicitly. */
        allowRemote: z._default(z.boolean(), false),
      }),
      {},
    ),
  ),
  /** Handler host processes: isolation, IPC, supervision (docs/handler-host.md). */
  hosts: lazySchema(() =>
    z.prefault(
      z.strictObject({
        /** "process": each host group in its own sandboxed process; "in-process": inside the agent (tests, debugging). */
        isolation: z._default(z.enum(["process", "in-process"]), "process"),
        /** Unprivileged user for `runAs: agent` groups; nobody/nogroup when it does not exist. */
        user: z._default(z.string().check(z.regex(/^[a-z_][a-z0-9_-]{0,31}$/)), "outpost"),
        /** Apply Landlock inside host processes (when the kernel offers it). */
        landlock: z._default(z.boolean(), true),
        /** Largest IPC message a host may send. */
        maxMessageBytes: z._default(z.int().check(z.gte(64 * 1024)), 64 * 1024 * 1024),
        /** Most CPU seconds a host process may use (its largest handler budget, capped here; core/host/cpu-limit.ts). */
        cpuCeilingSeconds: z._default(z.int().check(z.positive(), z.lte(86400)), 3600),
        /** Time a handler call may take before it is cancelled. */
        callTimeoutSeconds: z._default(z.number().check(z.positive()), 30),
        /** Time validate or load may take. */
        loadTimeoutSeconds: z._default(z.number().check(z.positive()), 300),
        /** First restart delay after a crash; doubles per crash up to maxBackoffMs. */
        restartBackoffMs: z._default(z.int().check(z.gte(0)), 500),
        maxBackoffMs: z._default(z.int().check(z.gte(0)), 60_000),
        /** A host that ran this long without crashing restarts with the initial delay again. */
        stableAfterSeconds: z._default(z.number().check(z.positive()), 120),
        /** This many crashes within windowSeconds is a crash loop. */
        crashLoop: z.prefault(
          z.strictObject({
            crashes: z._default(z.int().check(z.gte(2)), 3),
            windowSeconds: z._default(z.number().check(z.positive()), 300),
          }),
          {},
        ),
        /** RSS and CPU sampling period (memory watchdog, status, metrics). */
        watchdogIntervalMs: z._default(z.int().check(z.gte(10)), 1000),
        /** Liveness check of idle hosts; 0 disables. */
        heartbeatSeconds: z._default(z.number().check(z.gte(0)), 15),
        heartbeatTimeoutSeconds: z._default(z.number().check(z.positive()), 30),
        /** Added to the sum of a group's handler memoryMb for the runtime itself (Bun idles at ~40 MiB). */
        runtimeMemoryMb: z._default(z.int().check(z.gte(0)), 96),
        /** Events a host may emit per second; the excess is dropped and counted. */
        eventsPerSecond: z._default(z.int().check(z.positive()), 2000),
        /** Hosts of groups that hold nothing hot stop after a quiet period (core/host/idle-stop.ts). */
        idleStop: IdleStopSchema,
      }),
      {},
    ),
  ),
  alerts: lazySchema(() =>
    z.prefault(
      z.strictObject({
        /** Each rejected update is POSTed as JSON to every URL here (vendor and admin endpoints). */
        urls: z._default(z.array(z.url()), []),
        timeoutSeconds: z._default(z.number().check(z.positive()), 10),
      }),
      {},
    ),
  ),
  /** Administrator control over which content this agent takes (docs/rollout.md, "Admin policy"). */
  policy: lazySchema(() =>
    z.prefault(
      z.strictObject({
        /** early: follow earlyGroup; general: the assigned group; pinned-n-1: one version behind the group. */
        cadence: z._default(z.enum(["early", "general", "pinned-n-1"]), "general"),
        /** The earlier release group the tenant may opt into with cadence early. */
        earlyGroup: z.optional(z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,63}$/))),
        /** Content type → the only version this agent installs. */
        pins: z._default(
          z.record(z.string().check(z.regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/)), z.int().check(z.positive())),
          {},
        ),
      }),
      {},
    ),
  ),
  /** Heartbeats to the vendor's fleet endpoint, which gates staged rollouts on fleet health. */
  fleet: lazySchema(() =>
    z.prefault(
      z.strictObject({
        /** e.g. https://updates.example.com/fleet/heartbeat; unset: no heartbeats. */
        url: z.optional(z.url()),
        tenant: z._default(z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,63}$/)), "default"),
        /** File holding the tenant's fleet token (one line); preferred over `token`. */
        tokenFile: z.optional(z.string().check(z.minLength(1))),
        token: z.optional(z.string().check(z.minLength(16), z.maxLength(256))),
        timeoutSeconds: z._default(z.number().check(z.positive(), z.lte(120)), 10),
      }),
      {},
    ),
  ),
  /** Scheduled queries (ScheduledQueryPack): engine, watchdog defaults, result sinks (docs/queries.md). */
  query: lazySchema(() =>
    z.prefault(
      z.strictObject({
        /** embedded: built-in osquery-compatible tables; osqueryd: a local osqueryd's extension socket. */
        engine: z._default(z.enum(["embedded", "osqueryd"]), "embedded"),
        osquerySocket: z._default(z.string().check(z.minLength(1)), "/var/osquery/osquery.em"),
        /** `hostIdentifier` of every result line and the sharding input; default: the host name. */
        hostIdentifier: z.optional(z.string().check(z.minLength(1), z.maxLength(255))),
        /** One log line per changed row (osquery's default) rather than one diffResults line per run. */
        eventFormat: z._default(z.boolean(), true),
        epoch: z._default(z.int().check(z.gte(0)), 0),
        watchdog: z.prefault(
          z.strictObject({
            memoryMb: z._default(z.int().check(z.gte(1), z.lte(16384)), 200),
            cpuPercent: z._default(z.number().check(z.gte(1), z.lte(100)), 10),
            latencySeconds: z._default(z.number().check(z.gte(0.1), z.lte(3600)), 12),
            wallSeconds: z._default(z.number().check(z.gte(0.1), z.lte(86400)), 60),
            denylistSeconds: z._default(z.int().check(z.gte(1), z.lte(30 * 86400)), 86400),
          }),
          {},
        ),
        results: z.prefault(
          z.catchall(
            z.object({
              /** How often the supervisor collects result lines from the query host. */
              flushSeconds: z._default(z.number().check(z.positive(), z.lte(3600)), 2),
              batchLines: z._default(z.int().check(z.gte(1), z.lte(100_000)), 5000),
              file: z.prefault(
                z.strictObject({
                  enabled: z._default(z.boolean(), true),
                  /** Default: STATE/query-results/results.log. */
                  path: z.optional(z.string().check(z.minLength(1))),
                  maxBytes: z._default(z.int().check(z.gte(64 * 1024)), 25 * 1024 * 1024),
                  maxFiles: z._default(z.int().check(z.gte(1), z.lte(100)), 5),
                }),
                {},
              ),
              http: z.prefault(
                z.strictObject({
                  /** Data-lake ingest URL (e.g. http://lake:9000/v1/results); unset: no HTTP sink. */
                  url: z.optional(z.url()),
                  /** File holding a bearer token (one line); preferred over `token`. */
                  tokenFile: z.optional(z.string().check(z.minLength(1))),
                  token: z.optional(z.string().check(z.minLength(8), z.maxLength(512))),
                  gzip: z._default(z.boolean(), true),
                  timeoutSeconds: z._default(z.number().check(z.positive(), z.lte(600)), 30),
                  ...SinkQueueSettingsSchema.shape,
                }),
                {},
              ),
            }),
            // Other keys are sink kinds (postgres, clickhouse, syslog…), validated by plugins/sinks/registry.ts.
            z.unknown(),
          ),
          {},
        ),
      }),
      {},
    ),
  ),
  /** Agent events into the same sink kinds as query results (docs/sinks.md), keyed by kind. */
  events: lazySchema(() =>
    z.prefault(
      z.strictObject({ sinks: z._default(z.record(z.string(), z.record(z.string(), z.unknown())), {}) }),
      {},
    ),
  ),
  /**
   * Live Protection (docs/sxl.md): SXL lookups over DNS for lookup-enabled
   * detections, and sample submission, which needs lookups on.
   */
  liveProtection: lazySchema(() =>
    z.prefault(
      z
        .strictObject({
          lookups: z._default(z.boolean(), false),
          samples: z._default(z.boolean(), false),
          /** DNS zone of the SXL service; lookups are `<hash>.<detection>.v1.<zone>`. */
          zone: z._default(
            z
              .string()
              .check(
                z.maxLength(160),
                z.regex(
                  /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/i,
                  "a DNS zone such as sxl.example.com",
                ),
              ),
            "sxl.outpost.invalid",
          ),
          /** "system" (first nameserver of /etc/resolv.conf), "host", "host:port" or "[v6]:port". */
          resolver: z._default(z.string().check(z.minLength(1)), "system"),
          timeoutMs: z._default(z.int().check(z.gte(50), z.lte(30_000)), 1000),
          attempts: z._default(z.int().check(z.gte(1), z.lte(5)), 2),
          ratePerSecond: z._default(z.number().check(z.positive(), z.lte(100_000)), 50),
          burst: z._default(z.int().check(z.gte(1), z.lte(1_000_000)), 100),
          cacheSize: z._default(z.int().check(z.gte(0), z.lte(10_000_000)), 50_000),
          /** Sample receiver (POST); required when samples are on. */
          sampleUrl: z._default(z.nullable(z.url()), null),
          /** The vendor's ECDH P-384 public key (PEM) samples are encrypted to; required when samples are on. */
          vendorKey: z._default(z.nullable(z.string().check(z.minLength(1))), null),
        })
        .check(
          z.superRefine((lp, ctx) => {
            if (lp.samples && !lp.lookups) {
              ctx.addIssue({
                code: "custom",
                path: ["samples"],
                message: "sample submission requires lookups to be on",
              });
            }
            if (lp.samples && (!lp.sampleUrl || !lp.vendorKey)) {
              ctx.addIssue({
                code: "custom",
                path: ["samples"],
                message: "sample submission needs sampleUrl and vendorKey",
              });
            }
          }),
        ),
      {},
    ),
  ),
  /** Process reputation tags (LocalRepData, docs/scanning.md). */
  reputation: lazySchema(() =>
    z.prefault(
      z.strictObject({
        processTagging: z._default(z.boolean(), true),
        /** How often /proc is polled for new processes. */
        pollIntervalMs: z._default(z.int().check(z.gte(50), z.lte(60_000)), 250),
      }),
      {},
    ),
  ),
  /** IPS: NFQUEUE + EPIPS_data (docs/ips.md); schema in core/ips-config.ts. */
  ips: IpsConfigSchema,
  /** What MLModel scores may become: live, telemetry or off (docs/ml.md); schema in core/ml-config.ts. */
  ml: MlConfigSchema,
  /** The agent's own JSON-lines log files (core/logs/files.ts). */
  logs: LogFilesConfigSchema,
  /** Self-help (ESH) rules over local logs (docs/selfhelp.md). */
  selfHelp: SelfHelpConfigSchema,
  /** Telemetry upload, governed by TELEMSUP content; off by default (docs/telemetry.md). */
  telemetry: TelemetryConfigSchema,
  /** Kernel sensors and on-access scanning (docs/sensors.md). */
  sensors: SensorsSchema,
  onAccess: OnAccessSchema,
  /** Software updates through the content channel (A/B slots, docs/install.md); schema in core/install. */
  software: SoftwareConfigSchema,
  /** Local exclusions (source "config"), beside APPFEED/USERAPPFEED's (docs/exclusions.md). */
  exclusions: ExclusionsConfigSchema,
};
