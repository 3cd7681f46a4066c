/**
 * Main-thread side of a sensor fd: starts the reader thread
 * (reader-worker.ts), hands it the fd and the read end of a stop pipe, and
 * delivers decoded batches to `onBatch`. The shared counters are the
 * back-pressure contract with the thread (batches in flight, drops, kernel
 * losses, fail-open answers).
 */
import { closeFd, pipe, writeFd } from "./libc.ts";

export const SHARED = {
  inFlight: 0,
  dropped: 1,
  kernelLost: 2,
  failOpen: 3,
  selfAllowed: 4,
  cacheAllowed: 5,
  closeWrites: 6,
  /** Full collections the thread ran on its own heap after a burst (reader-worker.ts, QUIET_MS). */
  collections: 7,
} as const;

export interface ReaderInit {
  fd: number;
  stopFd: number;
  kind: "connector" | "fanotify" | "inotify" | "nflog" | "mountinfo";
  bufBytes: number;
  maxInFlight: number;
  maxPending: number;
  /** Quiet time after a burst before the thread collects its own heap, ms. */
  quietMs: number;
  /** At most one such collection per this many ms. */
  gcIntervalMs: number;
  openExe: boolean;
  shared: SharedArrayBuffer;
  /** fanotify: an AllowCache table (allow-cache.ts); events for files in it are answered on the thread. */
  allow?: SharedArrayBuffer;
  /**
   * fanotify, block mode with kernel ignore marks: each FAN_CLOSE_WRITE takes the inode's ignore mark
   * off here (FAN_MARK_REMOVE | FAN_MARK_IGNORED_MASK). Only when there was one (a file once found clean)
   * does the record go on to the main thread — even if the file's key is in the AllowCache, since a write
   * that left the key unchanged must still forget its verdicts. The rest are closed here.
   */
  closeWriteRemovesIgnore?: boolean;
  /** fanotify notification groups: records with none of these mask bits are dropped on the thread. */
  keepMask?: number;
}

export interface ReaderOptions {
  kind: ReaderInit["kind"];
  /** Batches the main thread may have unprocessed before the thread holds records back (default 8). */
  maxInFlight?: number;
  /** Records held back at most while the main thread is behind; beyond, dropped and counted (default 8192). */
  maxPending?: number;
  /** How long the fd must stay quiet after a burst before the thread collects its heap (default 2000 ms). */
  quietMs?: number;
  /** At most one of those collections per this many ms (default 30 000). */
  gcIntervalMs?: number;
  bufBytes?: number;
  openExe?: boolean;
  allow?: SharedArrayBuffer;
  closeWriteRemovesIgnore?: boolean;
  keepMask?: number;
}

export class SensorReader<R> {
  private worker: Worker | undefined;
  private stopWrite = -1;
  private readonly shared = new SharedArrayBuffer(32);
  private readonly counters = new Int32Array(this.shared);
  private stoppedPromise: Promise<void> | undefined;
  error: string | undefined;

  constructor(
    private readonly fd: number,
    private readonly opts: ReaderOptions,
    private readonly onBatch: (records: R[]) => void,
  ) {}

  start(): void {
    const p = pipe();
    if (typeof p === "number") throw new Error(`pipe2 failed (errno ${-p})`);
    const [stopRead, stopWrite] = p;
    this.stopWrite = stopWrite;
    const worker = new Worker(workerSpec());
    this.worker = worker;
    // A thread that cannot start (e.g. its module missing from a build) must not look like a quiet host.
    worker.onerror = (e: ErrorEvent) => {
      this.error = `reader thread failed: ${e.message}`;
    };
    this.stoppedPromise = new Promise<void>((resolve) => {
      worker.onmessage = (m: MessageEvent) => {
        const d = m.data as { records?: R[]; error?: string; stopped?: boolean };
        if (d.records) {
          Atomics.sub(this.counters, SHARED.inFlight, 1);
          try {
            this.onBatch(d.records);
          } catch (e) {
            this.error = (e as Error).message;
          }
        } else if (d.error) {
          this.error = d.error;
          resolve();
        } else if (d.stopped) resolve();
      };
      worker.addEventListener("close", () => resolve());
    });
    // The reader thread must not keep the agent alive on its own.
    (worker as { unref?: () => void }).unref?.();
    const init: ReaderInit = {
      fd: this.fd,
      stopFd: stopRead,
      kind: this.opts.kind,
      bufBytes: this.opts.bufBytes ?? 256 * 1024,
      maxInFlight: this.opts.maxInFlight ?? 8,
      // Records may hold an fd each (exec files, fanotify events): keep well under RLIMIT_NOFILE.
      maxPending: this.opts.maxPending ?? 8192,
      quietMs: this.opts.quietMs ?? 2000,
      gcIntervalMs: this.opts.gcIntervalMs ?? 30_000,
      openExe: this.opts.openExe ?? false,
      shared: this.shared,
      ...(this.opts.allow ? { allow: this.opts.allow } : {}),
      ...(this.opts.closeWriteRemovesIgnore ? { closeWriteRemovesIgnore: true } : {}),
      ...(this.opts.keepMask ? { keepMask: this.opts.keepMask } : {}),
    };
    worker.postMessage(init);
  }

  stats(): {
    dropped: number;
    kernelLost: number;
    failOpen: number;
    selfAllowed: number;
    cacheAllowed: number;
    closeWrites: number;
    collections: number;
  } {
    return {
      collections: Atomics.load(this.counters, SHARED.collections),
      closeWrites: Atomics.load(this.counters, SHARED.closeWrites),
      selfAllowed: Atomics.load(this.counters, SHARED.selfAllowed),
      cacheAllowed: Atomics.load(this.counters, SHARED.cacheAllowed),
      dropped: Atomics.load(this.counters, SHARED.dropped),
      kernelLost: Atomics.load(this.counters, SHARED.kernelLost),
      failOpen: Atomics.load(this.counters, SHARED.failOpen),
    };
  }

  /** Wakes the thread through the stop pipe, waits for it (bounded), then closes the sensor fd. */
  async stop(): Promise<void> {
    if (!this.worker) return;
    writeFd(this.stopWrite, new Uint8Array([1]));
    await Promise.race([this.stoppedPromise, Bun.sleep(2000)]);
    this.worker.terminate();
    this.worker = undefined;
    closeFd(this.stopWrite);
    closeFd(this.fd);
  }
}

/**
 * Where the reader thread's module is. From source it sits beside this file; in the compiled agent
 * build.ts embeds it as a second entry point, at its path from the project root inside the
 * executable's virtual filesystem (a URL relative to this bundle would point at the bundle's root).
 */
export function workerSpec(): string {
  return import.meta.url.includes("$bunfs")
    ? "./core/sensors/reader-worker.ts"
    : new URL("./reader-worker.ts", import.meta.url).href;
}
