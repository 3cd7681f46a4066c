/**
 * The sections of agent.json and their schemas (zod, validated at the edge). core/config.ts
 * assembles them into AgentConfigSchema and parses config files with them.
 */
import { z } from "zod";
import { ExclusionsConfigSchema } from "./exclusions-config.ts";
import { IdleStopSchema } from "./idle-stop-config.ts";
import { IpsConfigSchema } from "./ips-config.ts";
import { LogFilesConfigSchema, SelfHelpConfigSchema } from "./logs/config.ts";
import { MlConfigSchema } from "./ml-config.ts";
import { lazySchema } from "./schema/lazy-schema.ts";
import { OnAccessSchema, SensorsSchema } from "./sensors-config.ts";
import { SinkQueueSettingsSchema } from "./sink-queue-config.ts";
import { SoftwareConfigSchema } from "./software-config.ts";
import { TelemetryConfigSchema } from "./telemetry/config.ts";

/**
 * The sections of agent.json, each built on first use (core/schema/lazy-schema.ts): parseConfig
 * builds only the sections a file names and takes the others from CONFIG_DEFAULTS.
 */
export const SECTIONS = {
  stateDir: lazySchema(() => z.string().min(1).default("/var/lib/outpost")),
  update: lazySchema(() =>
    z
      .object({
        /** Folder path or http(s) URL of the content repository. */
        repo: z.string().min(1).default("http://127.0.0.1:8080"),
        group: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,63}$/)
          .default("public-1"),
        /** PEM bundle of trusted root certificates. */
        trust: z.string().min(1).default("/etc/outpost/root.pem"),
        intervalSeconds: z.number().int().min(10).default(3600),
        /** ± fraction of the interval added at random to each wait, so a fleet does not poll in lock-step. */
        jitter: z.number().min(0).max(0.5).default(0.1),
        maxBackoffSeconds: z
          .number()
          .int()
          .min(10)
          .default(6 * 3600),
        indexMaxBytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        timeoutSeconds: z.number().positive().default(60),
        /** A transfer that delivers fewer bytes per second than this (over a 10 s window) is aborted. */
        minBytesPerSecond: z.number().int().min(0).default(1024),
        enabled: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
  ),
  control: lazySchema(() =>
    z
      .object({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(0),
        /** Binding anything but loopback must be asked for explicitly. */
        allowRemote: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  ),
  /** Handler host processes: isolation, IPC, supervision (docs/handler-host.md). */
  hosts: lazySchema(() =>
    z
      .object({
        /** "process": each host group in its own sandboxed process; "in-process": inside the agent (tests, debugging). */
        isolation: z.enum(["process", "in-process"]).default("process"),
        /** Unprivileged user for `runAs: agent` groups; nobody/nogroup when it does not exist. */
        user: z
          .string()
          .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
          .default("outpost"),
        /** Apply Landlock inside host processes (when the kernel offers it). */
        landlock: z.boolean().default(true),
        /** Largest IPC message a host may send. */
        maxMessageBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(64 * 1024 * 1024),
        /** Most CPU seconds a host process may use (its largest handler budget, capped here; core/host/cpu-limit.ts). */
        cpuCeilingSeconds: z.number().int().positive().max(86400).default(3600),
        /** Time a handler call may take before it is cancelled. */
        callTimeoutSeconds: z.number().positive().default(30),
        /** Time validate or load may take. */
        loadTimeoutSeconds: z.number().positive().default(300),
        /** First restart delay after a crash; doubles per crash up to maxBackoffMs. */
        restartBackoffMs: z.number().int().min(0).default(500),
        maxBackoffMs: z.number().int().min(0).default(60_000),
        /** A host that ran this long without crashing restarts with the initial delay again. */
        stableAfterSeconds: z.number().positive().default(120),
        /** This many crashes within windowSeconds is a crash loop. */
        crashLoop: z
          .object({
            crashes: z.number().int().min(2).default(3),
            windowSeconds: z.number().positive().default(300),
          })
          .strict()
          .prefault({}),
        /** RSS and CPU sampling period (memory watchdog, status, metrics). */
        watchdogIntervalMs: z.number().int().min(10).default(1000),
        /** Liveness check of idle hosts; 0 disables. */
        heartbeatSeconds: z.number().min(0).default(15),
        heartbeatTimeoutSeconds: z.number().positive().default(30),
        /** Added to the sum of a group's handler memoryMb for the runtime itself (Bun idles at ~40 MiB). */
        runtimeMemoryMb: z.number().int().min(0).default(96),
        /** Events a host may emit per second; the excess is dropped and counted. */
        eventsPerSecond: z.number().int().positive().default(2000),
        /** Hosts of groups that hold nothing hot stop after a quiet period (core/host/idle-stop.ts). */
        idleStop: IdleStopSchema,
      })
      .strict()
      .prefault({}),
  ),
  alerts: lazySchema(() =>
    z
      .object({
        /** Each rejected update is POSTed as JSON to every URL here (vendor and admin endpoints). */
        urls: z.array(z.string().url()).default([]),
        timeoutSeconds: z.number().positive().default(10),
      })
      .strict()
      .prefault({}),
  ),
  /** Administrator control over which content this agent takes (docs/rollout.md, "Admin policy"). */
  policy: lazySchema(() =>
    z
      .object({
        /** early: follow earlyGroup; general: the assigned group; pinned-n-1: one version behind the group. */
        cadence: z.enum(["early", "general", "pinned-n-1"]).default("general"),
        /** The earlier release group the tenant may opt into with cadence early. */
        earlyGroup: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,63}$/)
          .optional(),
        /** Content type → the only version this agent installs. */
        pins: z
          .record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/), z.number().int().positive())
          .default({}),
      })
      .strict()
      .prefault({}),
  ),
  /** Heartbeats to the vendor's fleet endpoint, which gates staged rollouts on fleet health. */
  fleet: lazySchema(() =>
    z
      .object({
        /** e.g. https://updates.example.com/fleet/heartbeat; unset: no heartbeats. */
        url: z.string().url().optional(),
        tenant: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,63}$/)
          .default("default"),
        /** File holding the tenant's fleet token (one line); preferred over `token`. */
        tokenFile: z.string().min(1).optional(),
        token: z.string().min(16).max(256).optional(),
        timeoutSeconds: z.number().positive().max(120).default(10),
      })
      .strict()
      .prefault({}),
  ),
  /** Scheduled queries (ScheduledQueryPack): engine, watchdog defaults, result sinks (docs/queries.md). */
  query: lazySchema(() =>
    z
      .object({
        /** embedded: built-in osquery-compatible tables; osqueryd: a local osqueryd's extension socket. */
        engine: z.enum(["embedded", "osqueryd"]).default("embedded"),
        osquerySocket: z.string().min(1).default("/var/osquery/osquery.em"),
        /** `hostIdentifier` of every result line and the sharding input; default: the host name. */
        hostIdentifier: z.string().min(1).max(255).optional(),
        /** One log line per changed row (osquery's default) rather than one diffResults line per run. */
        eventFormat: z.boolean().default(true),
        epoch: z.number().int().min(0).default(0),
        watchdog: z
          .object({
            memoryMb: z.number().int().min(1).max(16384).default(200),
            cpuPercent: z.number().min(1).max(100).default(10),
            latencySeconds: z.number().min(0.1).max(3600).default(12),
            wallSeconds: z.number().min(0.1).max(86400).default(60),
            denylistSeconds: z
              .number()
              .int()
              .min(1)
              .max(30 * 86400)
              .default(86400),
          })
          .strict()
          .prefault({}),
        results: z
          .object({
            /** How often the supervisor collects result lines from the query host. */
            flushSeconds: z.number().positive().max(3600).default(2),
            batchLines: z.number().int().min(1).max(100_000).default(5000),
            file: z
              .object({
                enabled: z.boolean().default(true),
                /** Default: STATE/query-results/results.log. */
                path: z.string().min(1).optional(),
                maxBytes: z
                  .number()
                  .int()
                  .min(64 * 1024)
                  .default(25 * 1024 * 1024),
                maxFiles: z.number().int().min(1).max(100).default(5),
              })
              .strict()
              .prefault({}),
            http: z
              .object({
                /** Data-lake ingest URL (e.g. http://lake:9000/v1/results); unset: no HTTP sink. */
                url: z.string().url().optional(),
                /** File holding a bearer token (one line); preferred over `token`. */
                tokenFile: z.string().min(1).optional(),
                token: z.string().min(8).max(512).optional(),
                gzip: z.boolean().default(true),
                timeoutSeconds: z.number().positive().max(600).default(30),
                ...SinkQueueSettingsSchema.shape,
              })
              .strict()
              .prefault({}),
          })
          // Other keys are sink kinds (postgres, clickhouse, syslog…), validated by plugins/sinks/registry.ts.
          .catchall(z.unknown())
          .prefault({}),
      })
      .strict()
      .prefault({}),
  ),
  /** Agent events into the same sink kinds as query results (docs/sinks.md), keyed by kind. */
  events: lazySchema(() =>
    z
      .object({ sinks: z.record(z.string(), z.record(z.string(), z.unknown())).default({}) })
      .strict()
      .prefault({}),
  ),
  /**
   * Live Protection (docs/sxl.md): SXL lookups over DNS for lookup-enabled
   * detections, and sample submission, which needs lookups on.
   */
  liveProtection: lazySchema(() =>
    z
      .object({
        lookups: z.boolean().default(false),
        samples: z.boolean().default(false),
        /** DNS zone of the SXL service; lookups are `<hash>.<detection>.v1.<zone>`. */
        zone: z
          .string()
          .max(160)
          .regex(
            /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/i,
            "a DNS zone such as sxl.example.com",
          )
          .default("sxl.outpost.invalid"),
        /** "system" (first nameserver of /etc/resolv.conf), "host", "host:port" or "[v6]:port". */
        resolver: z.string().min(1).default("system"),
        timeoutMs: z.number().int().min(50).max(30_000).default(1000),
        attempts: z.number().int().min(1).max(5).default(2),
        ratePerSecond: z.number().positive().max(100_000).default(50),
        burst: z.number().int().min(1).max(1_000_000).default(100),
        cacheSize: z.number().int().min(0).max(10_000_000).default(50_000),
        /** Sample receiver (POST); required when samples are on. */
        sampleUrl: z.string().url().nullable().default(null),
        /** The vendor's ECDH P-384 public key (PEM) samples are encrypted to; required when samples are on. */
        vendorKey: z.string().min(1).nullable().default(null),
      })
      .strict()
      .superRefine((lp, ctx) => {
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
      })
      .prefault({}),
  ),
  /** Process reputation tags (LocalRepData, docs/scanning.md). */
  reputation: lazySchema(() =>
    z
      .object({
        processTagging: z.boolean().default(true),
        /** How often /proc is polled for new processes. */
        pollIntervalMs: z.number().int().min(50).max(60_000).default(250),
      })
      .strict()
      .prefault({}),
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
