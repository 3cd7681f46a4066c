/**
 * The queue settings every queued result sink accepts beside its own keys: the built-in HTTP sink
 * (`query.results.http` in core/config.ts) and each plugin kind (plugins/sinks/registry.ts). One
 * schema in core, which both may import, so the bounds and defaults cannot drift apart.
 */
import { z } from "zod";
import { lazySchema } from "./schema/lazy-schema.ts";

export const SinkQueueSettingsSchema = lazySchema(() =>
  z.object({
    /** The on-disk queue's cap; the oldest batches go (counted) beyond it. */
    queueMaxBytes: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(256 * 1024 * 1024),
    maxBackoffSeconds: z.number().positive().max(86400).default(300),
  }),
);
