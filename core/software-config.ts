/**
 * The `software` section of the agent config: whether software updates
 * delivered as content (a type contributing "agent.software") are switched
 * in, and where the A/B slots live. Off unless `agent install` turned it on,
 * so an agent run from a build tree never replaces itself (docs/install.md).
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

export const SoftwareConfigSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      enabled: z._default(z.boolean(), false),
      /** Installation root holding /opt/outpost/{slot-a,slot-b,current} ("/" on a real host). */
      root: z._default(z.string().check(z.minLength(1)), "/"),
      /** Time a new build has to prove healthy before the previous slot is restored. */
      deadlineSeconds: z._default(z.int().check(z.gte(5), z.lte(3600)), 120),
    }),
    {},
  ),
);

export type SoftwareConfig = z.infer<typeof SoftwareConfigSchema>;
