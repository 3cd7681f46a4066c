/**
 * The `hosts.idleStop` config section (core/host/idle-stop.ts), beside core/config.ts, which
 * references it with one line (a schema under core/host would knot core and core/host into a cycle).
 */
import { z } from "zod";
import { lazySchema } from "./schema/lazy-schema.ts";

export const IdleStopSchema = lazySchema(() =>
  z
    .object({
      /** Quiet time after which a listed group's host is stopped; 0 = never. */
      afterSeconds: z.number().min(0).default(300),
      /**
       * Groups that hold nothing hot (handlers called now and then). `appfeed`: its rules run at load,
       * hourly, after package changes and on demand, and what they generate (exclusions) is kept by the
       * supervisor, so its host is down between runs.
       */
      groups: z.array(z.string()).default(["config", "telemetry", "install", "repair", "appfeed"]),
    })
    .strict()
    .prefault({}),
);

export type IdleStopConfig = z.infer<typeof IdleStopSchema>;
