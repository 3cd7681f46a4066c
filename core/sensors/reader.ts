/**
 * Main-thread side of a sensor fd: hands the fd to a reader thread
 * (reader-worker.ts) and delivers its decoded batches to `onBatch`. The
 * shared counters are the back-pressure contract with the thread (batches
 * in flight, drops, kernel losses, fail-open answers).
 *
 * Fds share a thread (`ReaderThread`) unless one asks for its own
 * (`ownThread`: permission events, which hold an open() until answered) or
 * has other collection settings: each thread is a JavaScriptCore VM of its
 * own, and the demo agent ran four of them (issue 21, footprint). A thread
 * starts with its first fd and ends with its last.
 */
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { closeFd, pipe, writeFd } from "./libc.ts";
import type { ReaderPost } from "./reader-fd.ts";
import type { ThreadCommand, ThreadStart } from "./reader-worker.ts";

export const SHARED = {
  inFlight: 0,
  dropped: 1,
  kernelLost: 2,
  failOpen: 3,
  selfAllowed: 4,
  cacheAllowed: 5,
  closeWrites: 6,
  /** Full collections the thread ran on its heap after a burst that included this fd's records. */
  collections: 7,
} as const;

export interface ReaderInit {
  fd: number;
  kind: "connector" | "fanotify" | "inotify" | "nflog" | "mountinfo";
  bufBytes: number;
  maxInFlight: number;
  maxPending: number;
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
  /**
   * How long the thread's fds must stay quiet after a burst before it collects its heap (default
   * 2000 ms). Fds with other settings than the defaults get a thread per pair of settings.
   */
  quietMs?: number;
  /** At most one of those collections per this many ms (default 30 000). */
  gcIntervalMs?: number;
  bufBytes?: number;
  openExe?: boolean;
  allow?: SharedArrayBuffer;
  closeWriteRemovesIgnore?: boolean;
  keepMask?: number;
  /**
   * A thread for this fd alone: for permission events (on-access), which hold an open() on the host
   * until answered and must never wait behind another fd's burst (a connector batch of 512 execs).
   * It also keeps the thread that answers this process's own opens apart from the one that opens
   * files (the connector's /proc/PID/exe): on one thread, such an open would wait for itself.
   */
  ownThread?: boolean;
}

export class SensorReader<R> {
  private thread: ReaderThread | undefined;
  private readonly id = nextReaderId++;
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
    const gc = { quietMs: this.opts.quietMs ?? 2000, gcIntervalMs: this.opts.gcIntervalMs ?? 30_000 };
    const thread = ReaderThread.for(this.opts.ownThread ? undefined : `${gc.quietMs}/${gc.gcIntervalMs}`, gc);
    this.thread = thread;
    this.stoppedPromise = new Promise<void>((resolve) => {
      thread.add(
        {
          id: this.id,
          fd: this.fd,
          kind: this.opts.kind,
          bufBytes: this.opts.bufBytes ?? 256 * 1024,
          maxInFlight: this.opts.maxInFlight ?? 8,
          // Records may hold an fd each (exec files, fanotify events): keep well under RLIMIT_NOFILE.
          maxPending: this.opts.maxPending ?? 8192,
          openExe: this.opts.openExe ?? false,
          shared: this.shared,
          ...(this.opts.allow ? { allow: this.opts.allow } : {}),
          ...(this.opts.closeWriteRemovesIgnore ? { closeWriteRemovesIgnore: true } : {}),
          ...(this.opts.keepMask ? { keepMask: this.opts.keepMask } : {}),
        },
        {
          records: (records) => {
            Atomics.sub(this.counters, SHARED.inFlight, 1);
            try {
              this.onBatch(records as R[]);
            } catch (e) {
              this.error = (e as Error).message;
            }
          },
          ended: (error) => {
            if (error !== undefined) this.error = error;
            resolve();
          },
        },
      );
    });
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

  /** Takes the fd off its thread, waits for that (bounded), then closes the fd. */
  async stop(): Promise<void> {
    const thread = this.thread;
    if (!thread) return;
    this.thread = undefined;
    await thread.remove(this.id, this.stoppedPromise!);
    closeFd(this.fd);
  }
}

let nextReaderId = 1;

interface ReaderSink {
  records(records: unknown[]): void;
  /** The thread no longer reads the fd: stopped (no error) or given up on it. */
  ended(error?: string): void;
}

/** Reader threads started and not yet ended (stats, tests). */
export function readerThreads(): number {
  return ReaderThread.running;
}

/** One reader thread and the fds it serves, seen from the main thread. */
class ReaderThread {
  private static readonly shared = new Map<string, ReaderThread>();
  static running = 0;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly wakeRead: number;
  private readonly wakeWrite: number;
  private readonly sinks = new Map<number, ReaderSink>();
  private readonly exited: Promise<void>;
  /** Out of the registry and the count: ending (its last fd went) or ended (it failed). */
  private retired = false;

  /** The thread serving `key` (started if none does); no key: a thread of its own. */
  static for(key: string | undefined, gc: { quietMs: number; gcIntervalMs: number }): ReaderThread {
    const found = key === undefined ? undefined : ReaderThread.shared.get(key);
    if (found) return found;
    const t = new ReaderThread(key, gc);
    if (key !== undefined) ReaderThread.shared.set(key, t);
    return t;
  }

  private constructor(
    private readonly key: string | undefined,
    gc: { quietMs: number; gcIntervalMs: number },
  ) {
    const p = pipe();
    if (typeof p === "number") throw new Error(`pipe2 failed (errno ${-p})`);
    const [wakeRead, wakeWrite] = p;
    this.wakeRead = wakeRead;
    this.wakeWrite = wakeWrite;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const worker = new Worker(workerSpec());
    this.worker = worker;
    ReaderThread.running++;
    this.exited = new Promise<void>((resolve) => {
      // A thread that cannot start (e.g. its module missing from a build) must not look like a quiet host.
      worker.onerror = (e: ErrorEvent) => {
        this.fail(`reader thread failed: ${e.message}`);
        resolve();
      };
      worker.onmessage = (m: MessageEvent<ReaderPost | { exited: true }>) => {
        const d = m.data;
        if ("exited" in d) return resolve();
        const sink = this.sinks.get(d.id);
        if (!sink) return;
        if ("records" in d) sink.records(d.records);
        else {
          this.sinks.delete(d.id);
          sink.ended("error" in d ? d.error : undefined);
        }
      };
      worker.addEventListener("close", () => {
        this.fail("reader thread ended");
        resolve();
      });
    });
    // The reader thread must not keep the agent alive on its own.
    (worker as { unref?: () => void }).unref?.();
    const start: ThreadStart = { port: port2, wakeFd: wakeRead, ...gc };
    worker.postMessage(start, [port2]);
  }

  add(init: ReaderInit & { id: number }, sink: ReaderSink): void {
    this.sinks.set(init.id, sink);
    this.command({ add: init });
  }

  /** Takes fd `id` off the thread (`ended` bounds the wait); the thread ends with its last fd. */
  async remove(id: number, ended: Promise<void>): Promise<void> {
    if (this.sinks.has(id)) {
      this.command({ remove: id });
      await Promise.race([ended, Bun.sleep(2000)]);
      this.sinks.delete(id);
    }
    // Last fd gone (and not already ending: two removes can both find none left).
    if (this.sinks.size > 0 || !this.retire()) return;
    this.command({ exit: true });
    await Promise.race([this.exited, Bun.sleep(2000)]);
    this.worker.terminate();
    closeFd(this.wakeWrite);
  }

  /** Leaves the registry (a new reader from now on starts a new thread) and the count; once. */
  private retire(): boolean {
    if (this.retired) return false;
    this.retired = true;
    if (this.key !== undefined && ReaderThread.shared.get(this.key) === this)
      ReaderThread.shared.delete(this.key);
    ReaderThread.running--;
    return true;
  }

  private command(c: ThreadCommand): void {
    this.port.postMessage(c);
    writeFd(this.wakeWrite, WAKE);
  }

  /** The thread died (an uncaught error, or it ended unasked): every fd on it is given up. */
  private fail(error: string): void {
    for (const [id, sink] of this.sinks) {
      this.sinks.delete(id);
      sink.ended(error);
    }
    if (!this.retire()) return;
    this.worker.terminate();
    closeFd(this.wakeRead);
    closeFd(this.wakeWrite);
  }
}

const WAKE = new Uint8Array([1]);

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
