/**
 * The `ips` section of agent.json (core/config.ts references it; here, not in core/sensors/, so the kernel folders keep their import order). The IPS
 * is off unless asked for: it sits in the packet path, and a bad day there
 * is a network outage (docs/ips.md, "Configuration").
 */
import { z } from "zod";
import { lazySchema } from "./schema/lazy-schema.ts";

const Ports = lazySchema(() => z.array(z.number().int().min(1).max(65_535)).max(256));
const PortSetSchema = lazySchema(() =>
  z
    .object({ tcp: Ports.default([]), udp: Ports.default([]) })
    .strict()
    .prefault({}),
);

export const IpsConfigSchema = lazySchema(() =>
  z
    .object({
      enabled: z.boolean().default(false),
      /** detect: packets pass at once, copies are matched (alerts only). prevent: drop rules drop. */
      mode: z.enum(["detect", "prevent"]).default("detect"),
      /** NFQUEUE number; one reader per queue per network namespace. */
      queue: z.number().int().min(0).max(65_535).default(7),
      /**
       * What is queued: inbound = to these local ports, outbound = to these
       * remote ports. Replies of those flows are queued too (flow direction).
       */
      ports: z
        .object({
          inbound: PortSetSchema,
          outbound: PortSetSchema.default({ tcp: [80, 8080], udp: [] }),
        })
        .strict()
        .prefault({}),
      /** Packets the kernel holds for us; beyond it the queue fails open (packets pass uninspected). */
      queueMaxLen: z.number().int().min(1).max(65_536).default(2048),
      /** Bytes of each packet inspected (headers included). */
      copyBytes: z.number().int().min(128).max(65_535).default(4096),
      batch: z
        .object({
          maxPackets: z.number().int().min(1).max(1024).default(64),
          /** How long a packet may wait for others to share its IPC call. 0: the next event-loop turn. */
          maxWaitMs: z.number().min(0).max(100).default(0),
          /** Batches in flight at once; beyond that packets pass uninspected (and are counted). */
          maxInFlight: z.number().int().min(1).max(64).default(8),
        })
        .strict()
        .prefault({}),
      /** A batch the ips host has not answered by then is accepted (fail-open) and counted. */
      verdictTimeoutMs: z.number().int().min(10).max(10_000).default(250),
      /** Detection events per second on the event stream; the rest are counted. */
      maxEventsPerSecond: z.number().int().min(1).max(100_000).default(100),
      selfDisable: z
        .object({
          checkIntervalMs: z.number().int().min(50).max(60_000).default(1000),
          /** Overruns (kernel drops, socket ENOBUFS, backlog at the limit) per check that switch the IPS off. */
          overruns: z.number().int().min(1).max(1_000_000).default(1),
          /** A full backlog: queue_total ≥ this fraction of queueMaxLen counts as an overrun. */
          backlogFraction: z.number().min(0.1).max(1).default(0.9),
          /** p99 of verdict latency over one check (prevent mode) above this switches the IPS off. */
          verdictP99Ms: z.number().positive().max(60_000).default(100),
          /** Fewest verdicts in a check for the p99 to count. */
          minSamples: z.number().int().min(1).max(1_000_000).default(50),
          /** ips host crashes within the host supervisor's window that count as a crash loop. */
          hostCrashes: z.number().int().min(1).max(1000).default(3),
          /** A TCP endpoint that must stay reachable ("host:port"); null: no probe. */
          probe: z
            .object({
              target: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, "host:port"),
              intervalMs: z.number().int().min(100).max(3_600_000).default(5000),
              timeoutMs: z.number().int().min(50).max(60_000).default(2000),
              failures: z.number().int().min(1).max(100).default(3),
            })
            .strict()
            .nullable()
            .default(null),
        })
        .strict()
        .prefault({}),
      /** Where loaded kernel modules are read from (NTP_OVERRIDES); tests point these at a fake tree. */
      modules: z
        .object({
          procModules: z.string().min(1).default("/proc/modules"),
          sysModule: z.string().min(1).default("/sys/module"),
          pollMs: z.number().int().min(100).max(3_600_000).default(10_000),
        })
        .strict()
        .prefault({}),
      /** Where NFQUEUE counters are read (self-disable on drops and overruns). */
      procQueue: z.string().min(1).default("/proc/net/netfilter/nfnetlink_queue"),
    })
    .strict()
    .prefault({}),
);

export type IpsConfig = z.infer<typeof IpsConfigSchema>;
