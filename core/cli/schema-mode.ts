/**
 * zod compiles a fast path for each object schema (generated code through
 * `new Function`) the first time it parses, and decides whether to at the
 * schema's construction. That pays in a process that parses the same shapes
 * for hours — `agent run` and its host processes, IPC frame after frame —
 * and is pure start-up cost in a one-shot command that parses each schema a
 * handful of times: ~15-20 ms of CPU in `agent scan` (bench/scan-startup.ts).
 * So one-shot commands run zod interpreted. Must run before any module that
 * builds schemas is evaluated (bin/agent.ts calls it first).
 */
import { config } from "zod";

/** The subcommands that live long enough for compiled schemas to pay. */
export const LONG_RUNNING_COMMANDS: readonly string[] = ["run", "host"];

/** Interpreted schemas unless `argv`'s subcommand is long-running; returns whether it switched. */
export function interpretSchemasForOneShot(argv: readonly string[] = process.argv.slice(2)): boolean {
  const command = argv.find((a) => !a.startsWith("-"));
  if (command !== undefined && LONG_RUNNING_COMMANDS.includes(command)) return false;
  config({ jitless: true });
  return true;
}
