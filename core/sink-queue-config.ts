/**
 * The queue settings every queued result sink accepts beside its own keys: the built-in HTTP sink
 * (`query.results.http` in core/config.ts) and each plugin kind (plugins/sinks/registry.ts). One
 * schema in core, which both may import, so the bounds and defaults cannot drift apart.
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

export const SinkQueueSettingsSchema = lazySchema(() =>
  z.object({
    /** The on-disk queue's cap; the oldest batches go (counted) beyond it. */
    queueMaxBytes: z._default(z.int().check(z.gte(1024 * 1024)), 256 * 1024 * 1024),
    maxBackoffSeconds: z._default(z.number().check(z.positive(), z.lte(86400)), 300),
  }),
);
