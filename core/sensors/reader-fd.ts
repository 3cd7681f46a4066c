/**
 * One kernel sensor fd on a reader thread (reader-worker.ts runs the poll
 * loop; several fds can share it). Decodes each read, and for process execs
 * reads /proc at once, before the next datagram, because a short-lived
 * process is gone a millisecond later.
 *
 * Back-pressure: batches in flight to the main thread are counted in shared
 * memory; over the limit new records wait in a bounded pending list and go
 * over as one batch when the main thread catches up; past `maxPending`
 * they are dropped and counted. Permission events over the limit are never
 * held: they are answered ALLOW here (fail-open) and their fds closed, so a
 * flood can never hang an open() on the host.
 * Permission events from this very process are allowed here at once, and
 * so are events for files the decider already allowed unchanged (the
 * AllowCache, allow-cache.ts): a cached open costs one fstat on this thread
 * and never waits for the main thread.
 */
import { fstatSync } from "node:fs";
import { AllowCache } from "./allow-cache.ts";
import {
  closeFd,
  EAGAIN,
  EINTR,
  ENOBUFS,
  fanotifyAllowMany,
  fanotifyMarkFd,
  POLLIN,
  POLLPRI,
  pollIn,
  readFd,
  writeFd,
} from "./libc.ts";
import { parseNflog } from "./nflog-parse.ts";
import {
  FAN,
  FAN_MARK,
  FAN_PERM_MASK,
  type FanRecord,
  fanResponse,
  parseConnector,
  parseFanotify,
  parseInotify,
} from "./parse.ts";
import { type ProcDetails, readProc } from "./proc-read.ts";
import { type ReaderInit, SHARED } from "./reader.ts";

type Wire = ReturnType<typeof parseConnector>[number] & { proc?: ProcDetails | null };

/** What a reader thread posts to the main thread; `id` names the fd's SensorReader. */
export type ReaderPost =
  | { id: number; records: unknown[] }
  | { id: number; error: string }
  | { id: number; stopped: true };

/** Closes what a dropped record holds (an exec's exe fd, a fanotify event fd). */
function release(r: unknown): void {
  const w = r as { proc?: ProcDetails | null; fd?: number };
  if (w.proc?.exeFd !== undefined) closeFd(w.proc.exeFd);
  if (typeof w.fd === "number" && w.fd >= 0) closeFd(w.fd);
}

export class FdReader {
  private readonly shared: Int32Array;
  private readonly allow: AllowCache | undefined;
  private buf: Uint8Array | undefined;
  /**
   * Records read but not yet handed over: while the main thread has maxInFlight batches unprocessed,
   * new records wait here and go over as one larger batch as soon as it catches up. Bounded: past
   * maxPending records are dropped and counted. A burst thus loses nothing unless it outruns the
   * bound, and the main thread gets fewer, larger batches exactly when it is slowest.
   */
  private pending: unknown[] = [];
  /** Event fds to answer ALLOW (permission events) and to close, gathered per read: one writev for all. */
  private readonly allowNow: number[] = [];
  private readonly closeNow: number[] = [];
  /** mountinfo: a change came while the main thread was still on the previous one. */
  private owed = false;
  /** Records were read since the thread's last collection (that collection is then counted here). */
  dirty = false;

  constructor(
    readonly init: ReaderInit & { id: number },
    private readonly post: (m: ReaderPost) => void,
  ) {
    this.shared = new Int32Array(init.shared);
    this.allow = init.allow ? new AllowCache(AllowCache.slotsOf(init.allow), init.allow) : undefined;
  }

  get fd(): number {
    return this.init.fd;
  }

  /**
   * The poll events to ask for: mountinfo is always readable and reports a change of the mount table
   * as POLLPRI; while a change is owed it is not polled at all (the thread looks again shortly).
   */
  get events(): number {
    if (this.init.kind !== "mountinfo") return POLLIN;
    return this.owed ? 0 : POLLPRI;
  }

  /** Something waits for the main thread to catch up: the loop must look again within a few ms. */
  get waiting(): boolean {
    return this.pending.length > 0 || this.owed;
  }

  /** A collection ran on the thread after records of this fd: counted in its stats. */
  collected(): void {
    this.dirty = false;
    Atomics.add(this.shared, SHARED.collections, 1);
  }

  /** Hands over what was held back, if the main thread has caught up. */
  flush(): void {
    if (this.owed) {
      if (Atomics.load(this.shared, SHARED.inFlight) >= 1) return;
      this.owed = false;
      Atomics.add(this.shared, SHARED.inFlight, 1);
      this.post({ id: this.init.id, records: [{ changed: true }] });
      return;
    }
    if (this.pending.length === 0) return;
    if (Atomics.load(this.shared, SHARED.inFlight) >= this.init.maxInFlight) return;
    Atomics.add(this.shared, SHARED.inFlight, 1);
    this.post({ id: this.init.id, records: this.pending });
    this.pending = [];
  }

  /** Leaves the thread: what was held back is released (fds closed), never delivered. */
  drop(): void {
    for (const r of this.pending) release(r);
    this.pending = [];
  }

  /** The fd polled ready with `revents`. Returns an error text when this fd can no longer be read. */
  onReady(revents: number): string | undefined {
    if (this.init.kind === "mountinfo") {
      // POLLPRI/POLLERR: the table changed (poll itself acknowledges it). Plain POLLIN is not a change.
      if ((revents & ~POLLIN) === 0) return undefined;
      this.owed = true;
      this.flush();
      return undefined;
    }
    this.dirty = true;
    this.buf ??= new Uint8Array(this.init.bufBytes);
    const n = readFd(this.init.fd, this.buf);
    if (n < 0) {
      if (n === -EAGAIN || n === -EINTR) return undefined;
      if (n === -ENOBUFS) {
        // The kernel's socket buffer overflowed: events were lost before we could read them.
        Atomics.add(this.shared, SHARED.kernelLost, 1);
        return undefined;
      }
      return `read failed (errno ${-n})`;
    }
    if (this.init.kind === "connector") this.connector(this.buf, n);
    else if (this.init.kind === "inotify" || this.init.kind === "nflog") {
      const records = this.init.kind === "nflog" ? parseNflog(this.buf, n) : parseInotify(this.buf, n);
      if (records.length > 0) this.offer(records);
    } else this.fanotify(this.buf, n);
    return undefined;
  }

  private offer(records: unknown[]): void {
    const room = this.init.maxPending - this.pending.length;
    if (records.length <= room) {
      for (const r of records) this.pending.push(r);
    } else {
      for (let i = 0; i < records.length; i++) {
        if (i < room) this.pending.push(records[i]);
        else release(records[i]);
      }
      Atomics.add(this.shared, SHARED.dropped, records.length - Math.max(0, room));
    }
    this.flush();
  }

  /**
   * Coalesce: keep reading (and describing execs, which cannot wait) while the socket has more, then
   * hand over once. Fewer, larger batches keep the main thread's cost per exec low in a burst; 512
   * records at most, so the other fds on this thread wait one batch at the longest.
   */
  private connector(buf: Uint8Array, first: number): void {
    const records: Wire[] = [];
    let len = first;
    for (;;) {
      for (const r of parseConnector(buf, len))
        records.push(r.what === "exec" ? { ...r, proc: readProc(r.pid, { openExe: this.init.openExe }) } : r);
      if (records.length >= 512) break;
      const more = pollIn([this.init.fd], 0);
      if (typeof more === "number" || more.length === 0) break;
      len = readFd(this.init.fd, buf);
      if (len === -ENOBUFS) Atomics.add(this.shared, SHARED.kernelLost, 1);
      if (len <= 0) break;
    }
    if (records.length > 0) this.offer(records);
  }

  /**
   * Our own opens are answered here, on this thread: the main thread may be the one blocked in that
   * open (a sync read of a watched file), and it cannot answer while it waits (no self-deadlock). So
   * are files allowed before and unchanged since: the opener never waits for the main thread.
   */
  private fanotify(buf: Uint8Array, n: number): void {
    const init = this.init;
    const records = parseFanotify(buf, n).filter((r) => {
      if (init.keepMask && !(r.mask & init.keepMask)) {
        // Not wanted at all (a file created where only new directories matter): never cross threads.
        if (r.fd >= 0) this.closeNow.push(r.fd);
        return false;
      }
      if (r.pid === process.pid && r.mask & FAN_PERM_MASK) {
        this.allowNow.push(r.fd);
        this.closeNow.push(r.fd);
        Atomics.add(this.shared, SHARED.selfAllowed, 1);
        return false;
      }
      if (init.closeWriteRemovesIgnore && r.fd >= 0 && r.mask & FAN.CLOSE_WRITE)
        return this.closedAfterWrite(r);
      return !this.allowedBefore(r);
    });
    this.settleNow();
    if (records.length === 0) return;
    if (Atomics.load(this.shared, SHARED.inFlight) >= init.maxInFlight) {
      // A held permission event holds an open() on the host: never queue it, answer ALLOW now.
      const notify = records.filter((r) => {
        if (r.fd < 0 || !(r.mask & FAN_PERM_MASK)) return true;
        writeFd(init.fd, fanResponse(r.fd, true));
        Atomics.add(this.shared, SHARED.failOpen, 1);
        Atomics.add(this.shared, SHARED.dropped, 1);
        closeFd(r.fd);
        return false;
      });
      if (notify.length > 0) this.offer(notify);
      return;
    }
    this.offer(records);
  }

  private settleNow(): void {
    if (this.allowNow.length > 0) {
      const answered = fanotifyAllowMany(this.init.fd, this.allowNow);
      // Should writev stop short, answer the rest one by one: a held open must never be left waiting.
      for (let i = Math.max(0, answered); i < this.allowNow.length; i++)
        writeFd(this.init.fd, fanResponse(this.allowNow[i]!, true));
      this.allowNow.length = 0;
    }
    for (const fd of this.closeNow) closeFd(fd);
    this.closeNow.length = 0;
  }

  /** Queues ALLOW (and the close) for an event for a file the decider allowed before, unchanged since. */
  private allowedBefore(r: { fd: number; mask: number }): boolean {
    if (!this.allow || r.fd < 0) return false;
    let hit = false;
    try {
      hit = this.allow.has(fstatSync(r.fd, { bigint: true }));
    } catch {
      return false;
    }
    if (!hit) return false;
    if (r.mask & FAN_PERM_MASK) this.allowNow.push(r.fd);
    this.closeNow.push(r.fd);
    Atomics.add(this.shared, SHARED.cacheAllowed, 1);
    return true;
  }

  /** Block mode with ignore marks (ReaderInit.closeWriteRemovesIgnore): true to hand the record over. */
  private closedAfterWrite(r: FanRecord): boolean {
    const flags = FAN_MARK.REMOVE | FAN_MARK.IGNORED_MASK;
    const removed = fanotifyMarkFd(this.init.fd, flags, FAN.OPEN_PERM, r.fd) === 0;
    Atomics.add(this.shared, SHARED.closeWrites, 1);
    if (removed) {
      r.ignoreMarkRemoved = true;
      return true;
    }
    this.closeNow.push(r.fd); // ENOENT: never found clean since the last flush, no verdict to forget
    return false;
  }
}
