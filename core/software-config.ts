/**
 * The `software` section of the agent config: whether software updates
 * delivered as content (a type contributing "agent.software") are switched
 * in, and where the A/B slots live. Off unless `agent install` turned it on,
 * so an agent run from a build tree never replaces itself (docs/install.md).
 */
import { z } from "zod";
import { lazySchema } from "./schema/lazy-schema.ts";

export const SoftwareConfigSchema = lazySchema(() =>
  z
    .object({
      enabled: z.boolean().default(false),
      /** Installation root holding /opt/outpost/{slot-a,slot-b,current} ("/" on a real host). */
      root: z.string().min(1).default("/"),
      /** Time a new build has to prove healthy before the previous slot is restored. */
      deadlineSeconds: z.number().int().min(5).max(3600).default(120),
    })
    .strict()
    .prefault({}),
);

export type SoftwareConfig = z.infer<typeof SoftwareConfigSchema>;
