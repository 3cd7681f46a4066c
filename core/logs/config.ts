/**
 * Config sections for the agent's own log files (`logs`) and for the
 * self-help (ESH) log reader (`selfHelp`). Referenced from core/config.ts;
 * defined here so the feature owns its schema.
 */

import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

export const LogFilesConfigSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      /** Write the JSON-lines log to rotating files as well as stderr. */
      enabled: z._default(z.boolean(), true),
      /** Default: STATE/logs. The live file is agent.log; rotated ones agent.log.1 … .N. */
      dir: z.optional(z.string().check(z.minLength(1))),
      maxBytes: z._default(z.int().check(z.gte(64 * 1024), z.lte(1024 * 1024 * 1024)), 10 * 1024 * 1024),
      maxFiles: z._default(z.int().check(z.gte(1), z.lte(100)), 5),
    }),
    {},
  ),
);

export const SelfHelpConfigSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      /** Run the ESH rules over the logs they name (findings are information only). */
      enabled: z._default(z.boolean(), true),
      /** Read the system journal (`journalctl -o json --follow`) for the units rules name. */
      journal: z._default(z.boolean(), false),
      /**
       * `file:PATH` sources a rule may name must be under one of these directories:
       * content must never make the (root) supervisor read an arbitrary file.
       */
      allowedDirs: z._default(z.array(z.string().check(z.regex(/^\/[^\0]*$/, "an absolute directory"))), [
        "/var/log",
      ]),
      /** How often the tailer looks for new lines, rotation and truncation. */
      pollMs: z._default(z.int().check(z.gte(20), z.lte(60_000)), 1000),
      /** A finding is cleared when its pattern has not matched for this long. */
      quietSeconds: z._default(z.int().check(z.gte(1), z.lte(30 * 86400)), 3600),
    }),
    {},
  ),
);

export type LogFilesConfig = z.infer<typeof LogFilesConfigSchema>;
export type SelfHelpConfig = z.infer<typeof SelfHelpConfigSchema>;
