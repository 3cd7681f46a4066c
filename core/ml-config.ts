/**
 * The `ml` section of agent.json (core/config.ts references it): what the
 * scan requester lets MLModel scores become (docs/ml.md, "Modes"). A model's
 * own manifest says live or telemetry; this says how far the host goes:
 *
 *   live       live models' scores at or above threshold are detections (the default)
 *   telemetry  every score is only counted (metrics, telemetry) — never a verdict
 *   off        no object is sent to the models at all
 *
 * Policy may set it (`ml.*`), and `live` needs the `mlLive` flag once a
 * Flags supplement is installed (core/effective/gates.ts).
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

export const MlConfigSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      mode: z._default(z.enum(["live", "telemetry", "off"]), "live"),
    }),
    {},
  ),
);

export type MlConfig = z.infer<typeof MlConfigSchema>;
