// Preloaded by bun test (bunfig.toml). Tests observe logs through sinks; keep stderr quiet unless asked.
import { afterAll } from "bun:test";
import { rmSync } from "node:fs";

process.env.OUTPOST_LOG_QUIET ??= "1";

// Process-wide fixtures (one PKI per test process) register their temp dirs here; a preload
// afterAll runs once after the last file of a serial run, where a process "exit" handler is not
// reliably called. Under `bun test --parallel` (npm test) it runs after every file a
// worker is handed — a worker never knows which file is its last — so `onRemoved` lets a fixture
// drop its cache and build a fresh one for the worker's next file.
const tempDirs = new Map<string, (() => void) | undefined>();
export function registerTempDir(dir: string, onRemoved?: () => void): void {
  tempDirs.set(dir, onRemoved);
}
// Workers started by tests load this preload too, and bun:test hooks only exist on the main thread.
if (Bun.isMainThread) {
  afterAll(() => {
    for (const [d, onRemoved] of tempDirs) {
      rmSync(d, { recursive: true, force: true });
      onRemoved?.();
    }
    tempDirs.clear();
  });
}
