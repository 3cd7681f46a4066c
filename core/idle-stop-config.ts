/**
 * The `hosts.idleStop` config section (core/host/idle-stop.ts), beside core/config.ts, which
 * references it with one line (a schema under core/host would knot core and core/host into a cycle).
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

export const IdleStopSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      /** Quiet time after which a listed group's host is stopped; 0 = never. */
      afterSeconds: z._default(z.number().check(z.gte(0)), 300),
      /**
       * Groups that hold nothing hot (handlers called now and then). `appfeed`: its rules run at load,
       * hourly, after package changes and on demand, and what they generate (exclusions) is kept by the
       * supervisor, so its host is down between runs.
       */
      groups: z._default(z.array(z.string()), ["config", "telemetry", "install", "repair", "appfeed"]),
    }),
    {},
  ),
);

export type IdleStopConfig = z.infer<typeof IdleStopSchema>;
