// Preloaded by bun test (bunfig.toml). Tests observe logs through sinks; keep stderr quiet unless asked.
import { afterAll } from "bun:test";
import { rmSync } from "node:fs";

process.env.OUTPOST_LOG_QUIET ??= "1";

// Process-wide fixtures (one PKI per test process) register their temp dirs here; a preload
// afterAll runs once after every file, where a process "exit" handler is not reliably called.
const tempDirs = new Set<string>();
export function registerTempDir(dir: string): void {
  tempDirs.add(dir);
}
// Workers started by tests load this preload too, and bun:test hooks only exist on the main thread.
if (Bun.isMainThread) {
  afterAll(() => {
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    tempDirs.clear();
  });
}
