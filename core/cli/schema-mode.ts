/**
 * zod compiles a fast path for each object schema (generated code through
 * `new Function`) the first time it parses, and decides whether to at the
 * schema's construction. That pays in a process that parses the same shapes
 * for hours — `agent run` and the host processes it supervises, IPC frame
 * after frame — and is pure start-up cost in a one-shot command that parses
 * each schema a handful of times: ~15 ms of CPU in `agent scan`, ~10 ms more
 * in the scanner host it starts (bench/scan-startup.ts). So one-shot
 * commands, and the hosts they start, run zod interpreted. Must run before
 * any module that builds schemas is evaluated (bin/agent.ts calls it first).
 */
import { config } from "zod/mini";
import { ONE_SHOT_SUPERVISOR_ENV } from "../jsc-options.ts";

/** Interpreted schemas unless this process is long-running; returns whether it switched. */
export function interpretSchemasForOneShot(
  argv: readonly string[] = process.argv.slice(2),
  env: Record<string, string | undefined> = process.env,
): boolean {
  const command = argv.find((a) => !a.startsWith("-"));
  if (command === "run") {
    delete env[ONE_SHOT_SUPERVISOR_ENV];
    return false;
  }
  if (command === "host") {
    if (env[ONE_SHOT_SUPERVISOR_ENV] !== "1") return false;
  } else {
    env[ONE_SHOT_SUPERVISOR_ENV] = "1";
  }
  config({ jitless: true });
  return true;
}
