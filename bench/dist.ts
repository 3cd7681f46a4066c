/**
 * The compiled executables a benchmark runs (`bun build.ts` makes them): their paths, or a clear
 * exit (2) naming the benchmark when they are missing.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

export function distExecutables(bench: string): { root: string; agent: string; contentctl: string } {
  const root = join(import.meta.dir, "..");
  const agent = join(root, "dist/agent");
  const contentctl = join(root, "dist/contentctl");
  if (!existsSync(agent) || !existsSync(contentctl)) {
    console.error(`bench/${bench}: dist/agent or dist/contentctl missing; run \`bun build.ts\` first`);
    process.exit(2);
  }
  return { root, agent, contentctl };
}
