/**
 * The compiled executables a benchmark runs (`bun build.ts` makes them): their paths, or a clear
 * exit (2) naming the benchmark when they are missing.
 */
import { chmodSync, copyFileSync, existsSync } from "node:fs";
import { basename, join } from "node:path";

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

/**
 * Copies of executables that a comparison runs, written now into `dir`, so that every build compared
 * starts from the same page-cache state whenever it was built. An `agent` built hours ago measured
 * 10 MB less RSS and 8–17 ms more CPU per `agent scan` than the very same file copied afresh
 * (bench/scan-startup.ts --before; its file pages had been dropped and read back, which this machine's
 * DAMON `pageout` scheme does to cold pages); reading the old file through first did not change it.
 */
export function freshCopies(dir: string, paths: readonly string[]): string[] {
  return paths.map((path, i) => {
    const copy = join(dir, `${i}-${basename(path)}`);
    copyFileSync(path, copy);
    chmodSync(copy, 0o755);
    return copy;
  });
}
