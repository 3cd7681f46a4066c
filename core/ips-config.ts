/**
 * The `ips` section of agent.json (core/config.ts references it; here, not in core/sensors/, so the kernel folders keep their import order). The IPS
 * is off unless asked for: it sits in the packet path, and a bad day there
 * is a network outage (docs/ips.md, "Configuration").
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

const Ports = lazySchema(() => z.array(z.int().check(z.gte(1), z.lte(65_535))).check(z.maxLength(256)));
const PortSetSchema = lazySchema(() =>
  z.prefault(z.strictObject({ tcp: z._default(Ports, []), udp: z._default(Ports, []) }), {}),
);

export const IpsConfigSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      enabled: z._default(z.boolean(), false),
      /** detect: packets pass at once, copies are matched (alerts only). prevent: drop rules drop. */
      mode: z._default(z.enum(["detect", "prevent"]), "detect"),
      /** NFQUEUE number; one reader per queue per network namespace. */
      queue: z._default(z.int().check(z.gte(0), z.lte(65_535)), 7),
      /**
       * What is queued: inbound = to these local ports, outbound = to these
       * remote ports. Replies of those flows are queued too (flow direction).
       */
      ports: z.prefault(
        z.strictObject({
          inbound: PortSetSchema,
          outbound: z._default(PortSetSchema, { tcp: [80, 8080], udp: [] }),
        }),
        {},
      ),
      /** Packets the kernel holds for us; beyond it the queue fails open (packets pass uninspected). */
      queueMaxLen: z._default(z.int().check(z.gte(1), z.lte(65_536)), 2048),
      /** Bytes of each packet inspected (headers included). */
      copyBytes: z._default(z.int().check(z.gte(128), z.lte(65_535)), 4096),
      batch: z.prefault(
        z.strictObject({
          maxPackets: z._default(z.int().check(z.gte(1), z.lte(1024)), 64),
          /** How long a packet may wait for others to share its IPC call. 0: the next event-loop turn. */
          maxWaitMs: z._default(z.number().check(z.gte(0), z.lte(100)), 0),
          /** Batches in flight at once; beyond that packets pass uninspected (and are counted). */
          maxInFlight: z._default(z.int().check(z.gte(1), z.lte(64)), 8),
        }),
        {},
      ),
      /** A batch the ips host has not answered by then is accepted (fail-open) and counted. */
      verdictTimeoutMs: z._default(z.int().check(z.gte(10), z.lte(10_000)), 250),
      /** Detection events per second on the event stream; the rest are counted. */
      maxEventsPerSecond: z._default(z.int().check(z.gte(1), z.lte(100_000)), 100),
      selfDisable: z.prefault(
        z.strictObject({
          checkIntervalMs: z._default(z.int().check(z.gte(50), z.lte(60_000)), 1000),
          /** Overruns (kernel drops, socket ENOBUFS, backlog at the limit) per check that switch the IPS off. */
          overruns: z._default(z.int().check(z.gte(1), z.lte(1_000_000)), 1),
          /** A full backlog: queue_total ≥ this fraction of queueMaxLen counts as an overrun. */
          backlogFraction: z._default(z.number().check(z.gte(0.1), z.lte(1)), 0.9),
          /** p99 of verdict latency over one check (prevent mode) above this switches the IPS off. */
          verdictP99Ms: z._default(z.number().check(z.positive(), z.lte(60_000)), 100),
          /** Fewest verdicts in a check for the p99 to count. */
          minSamples: z._default(z.int().check(z.gte(1), z.lte(1_000_000)), 50),
          /** ips host crashes within the host supervisor's window that count as a crash loop. */
          hostCrashes: z._default(z.int().check(z.gte(1), z.lte(1000)), 3),
          /** A TCP endpoint that must stay reachable ("host:port"); null: no probe. */
          probe: z._default(
            z.nullable(
              z.strictObject({
                target: z
                  .string()
                  .check(z.regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, "host:port")),
                intervalMs: z._default(z.int().check(z.gte(100), z.lte(3_600_000)), 5000),
                timeoutMs: z._default(z.int().check(z.gte(50), z.lte(60_000)), 2000),
                failures: z._default(z.int().check(z.gte(1), z.lte(100)), 3),
              }),
            ),
            null,
          ),
        }),
        {},
      ),
      /** Where loaded kernel modules are read from (NTP_OVERRIDES); tests point these at a fake tree. */
      modules: z.prefault(
        z.strictObject({
          procModules: z._default(z.string().check(z.minLength(1)), "/proc/modules"),
          sysModule: z._default(z.string().check(z.minLength(1)), "/sys/module"),
          pollMs: z._default(z.int().check(z.gte(100), z.lte(3_600_000)), 10_000),
        }),
        {},
      ),
      /** Where NFQUEUE counters are read (self-disable on drops and overruns). */
      procQueue: z._default(z.string().check(z.minLength(1)), "/proc/net/netfilter/nfnetlink_queue"),
    }),
    {},
  ),
);

export type IpsConfig = z.infer<typeof IpsConfigSchema>;
