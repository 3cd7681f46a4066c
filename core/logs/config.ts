/**
 * Config sections for the agent's own log files (`logs`) and for the
 * self-help (ESH) log reader (`selfHelp`). Referenced from core/config.ts;
 * defined here so the feature owns its schema.
 */
import { z } from "zod";
import { lazySchema } from "../schema/lazy-schema.ts";

export const LogFilesConfigSchema = lazySchema(() =>
  z
    .object({
      /** Write the JSON-lines log to rotating files as well as stderr. */
      enabled: z.boolean().default(true),
      /** Default: STATE/logs. The live file is agent.log; rotated ones agent.log.1 … .N. */
      dir: z.string().min(1).optional(),
      maxBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(1024 * 1024 * 1024)
        .default(10 * 1024 * 1024),
      maxFiles: z.number().int().min(1).max(100).default(5),
    })
    .strict()
    .prefault({}),
);

export const SelfHelpConfigSchema = lazySchema(() =>
  z
    .object({
      /** Run the ESH rules over the logs they name (findings are information only). */
      enabled: z.boolean().default(true),
      /** Read the system journal (`journalctl -o json --follow`) for the units rules name. */
      journal: z.boolean().default(false),
      /**
       * `file:PATH` sources a rule may name must be under one of these directories:
       * content must never make the (root) supervisor read an arbitrary file.
       */
      allowedDirs: z.array(z.string().regex(/^\/[^\0]*$/, "an absolute directory")).default(["/var/log"]),
      /** How often the tailer looks for new lines, rotation and truncation. */
      pollMs: z.number().int().min(20).max(60_000).default(1000),
      /** A finding is cleared when its pattern has not matched for this long. */
      quietSeconds: z
        .number()
        .int()
        .min(1)
        .max(30 * 86400)
        .default(3600),
    })
    .strict()
    .prefault({}),
);

export type LogFilesConfig = z.infer<typeof LogFilesConfigSchema>;
export type SelfHelpConfig = z.infer<typeof SelfHelpConfigSchema>;
