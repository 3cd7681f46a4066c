/**
 * The reader thread of one kernel sensor fd. It blocks in poll() (no CPU
 * while nothing happens — this is what replaced the 250 ms /proc sweep),
 * decodes each read, and for process execs reads /proc at once, before the
 * next datagram, because a short-lived process is gone a millisecond later.
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
import { closeSync, fstatSync } from "node:fs";
import { AllowCache } from "./allow-cache.ts";
import {
  closeFd,
  EAGAIN,
  EINTR,
  ENOBUFS,
  fanotifyAllowMany,
  fanotifyMarkFd,
  pollChangeOrStop,
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

declare const self: Worker;

type Wire = ReturnType<typeof parseConnector>[number] & { proc?: ProcDetails | null };

self.onmessage = (m: MessageEvent<ReaderInit>) => run(m.data);

/** Closes what a dropped record holds (an exec's exe fd, a fanotify event fd). */
function release(r: unknown): void {
  const w = r as { proc?: ProcDetails | null; fd?: number };
  if (w.proc?.exeFd !== undefined) closeFd(w.proc.exeFd);
  if (typeof w.fd === "number" && w.fd >= 0) closeFd(w.fd);
}

function run(init: ReaderInit): void {
  if (init.kind === "mountinfo") {
    watchMounts(init);
    return;
  }
  const shared = new Int32Array(init.shared);
  const buf = new Uint8Array(init.bufBytes);
  const allow = init.allow ? new AllowCache(AllowCache.slotsOf(init.allow), init.allow) : undefined;
  /** Event fds to answer ALLOW (permission events) and to close, gathered per read: one writev for all. */
  const allowNow: number[] = [];
  const closeNow: number[] = [];
  const settleNow = () => {
    if (allowNow.length > 0) {
      const answered = fanotifyAllowMany(init.fd, allowNow);
      // Should writev stop short, answer the rest one by one: a held open must never be left waiting.
      for (let i = Math.max(0, answered); i < allowNow.length; i++)
        writeFd(init.fd, fanResponse(allowNow[i]!, true));
      allowNow.length = 0;
    }
    for (const fd of closeNow) closeFd(fd);
    closeNow.length = 0;
  };
  /** Queues ALLOW (and the close) for an event for a file the decider allowed before, unchanged since. */
  const allowedBefore = (r: { fd: number; mask: number }): boolean => {
    if (!allow || r.fd < 0) return false;
    let hit = false;
    try {
      hit = allow.has(fstatSync(r.fd, { bigint: true }));
    } catch {
      return false;
    }
    if (!hit) return false;
    if (r.mask & FAN_PERM_MASK) allowNow.push(r.fd);
    closeNow.push(r.fd);
    Atomics.add(shared, SHARED.cacheAllowed, 1);
    return true;
  };
  /** Block mode with ignore marks (ReaderInit.closeWriteRemovesIgnore): true to hand the record over. */
  const closedAfterWrite = (r: FanRecord): boolean => {
    const flags = FAN_MARK.REMOVE | FAN_MARK.IGNORED_MASK;
    const removed = fanotifyMarkFd(init.fd, flags, FAN.OPEN_PERM, r.fd) === 0;
    Atomics.add(shared, SHARED.closeWrites, 1);
    if (removed) {
      r.ignoreMarkRemoved = true;
      return true;
    }
    closeNow.push(r.fd); // ENOENT: never found clean since the last flush, no verdict to forget
    return false;
  };
  // Records read but not yet handed over: while the main thread has maxInFlight batches unprocessed,
  // new records wait here and go over as one larger batch as soon as it catches up. Bounded: past
  // maxPending records are dropped and counted. A burst thus loses nothing unless it outruns the bound,
  // and the main thread gets fewer, larger batches exactly when it is slowest.
  let pending: unknown[] = [];
  const offer = (records: unknown[]) => {
    const room = init.maxPending - pending.length;
    if (records.length <= room) {
      for (const r of records) pending.push(r);
    } else {
      for (let i = 0; i < records.length; i++) {
        if (i < room) pending.push(records[i]);
        else release(records[i]);
      }
      Atomics.add(shared, SHARED.dropped, records.length - Math.max(0, room));
    }
    flush();
  };
  const flush = () => {
    if (pending.length === 0 || Atomics.load(shared, SHARED.inFlight) >= init.maxInFlight) return;
    Atomics.add(shared, SHARED.inFlight, 1);
    postMessage({ records: pending });
    pending = [];
  };
  // The thread never returns to its event loop, so no GC timer ever runs here (and the agent runs
  // with BUN_GC_TIMER_DISABLE anyway): a burst's decoded records stayed on this heap until
  // allocation pressure happened to trigger a collection. Once the fd has been quiet for quietMs
  // after a burst the thread collects once; an idle thread still blocks with no timeout. At most one
  // collection per gcIntervalMs, so a trickle (a cron job every few seconds) cannot turn into a full
  // collection every few seconds (the same rule as core/host/idle-gc.ts).
  let garbage = false;
  let collectedAt = Number.NEGATIVE_INFINITY;
  const gcWait = () => Math.max(init.quietMs, collectedAt + init.gcIntervalMs - Date.now());
  for (;;) {
    // Idle: block with no timeout (no CPU). With records waiting, look again every few ms.
    const ready = pollIn([init.fd, init.stopFd], pending.length > 0 ? 5 : garbage ? gcWait() : -1);
    if (typeof ready === "number") {
      if (ready === -EINTR) continue;
      postMessage({ error: `poll failed (errno ${-ready})` });
      return;
    }
    if (ready.includes(init.stopFd)) break;
    if (ready.length === 0) {
      if (pending.length === 0 && garbage && Date.now() - collectedAt >= init.gcIntervalMs) {
        garbage = false;
        collectedAt = Date.now();
        Bun.gc(true);
        Atomics.add(shared, SHARED.collections, 1);
      }
      flush();
      continue;
    }
    garbage = true;
    const n = readFd(init.fd, buf);
    if (n < 0) {
      if (n === -EAGAIN || n === -EINTR) continue;
      if (n === -ENOBUFS) {
        // The kernel's socket buffer overflowed: events were lost before we could read them.
        Atomics.add(shared, SHARED.kernelLost, 1);
        continue;
      }
      postMessage({ error: `read failed (errno ${-n})` });
      return;
    }
    if (init.kind === "connector") {
      // Coalesce: keep reading (and describing execs, which cannot wait) while the socket has more,
      // then hand over once. Fewer, larger batches keep the main thread's cost per exec low in a burst.
      const records: Wire[] = [];
      let len = n;
      for (;;) {
        for (const r of parseConnector(buf, len))
          records.push(r.what === "exec" ? { ...r, proc: readProc(r.pid, { openExe: init.openExe }) } : r);
        if (records.length >= 512) break;
        const more = pollIn([init.fd], 0);
        if (typeof more === "number" || more.length === 0) break;
        len = readFd(init.fd, buf);
        if (len === -ENOBUFS) Atomics.add(shared, SHARED.kernelLost, 1);
        if (len <= 0) break;
      }
      if (records.length > 0) offer(records);
    } else if (init.kind === "inotify" || init.kind === "nflog") {
      const records = init.kind === "nflog" ? parseNflog(buf, n) : parseInotify(buf, n);
      if (records.length > 0) offer(records);
    } else {
      // Our own opens are answered here, on this thread: the main thread may be the one blocked in
      // that open (a sync read of a watched file), and it cannot answer while it waits (no self-deadlock).
      // So are files allowed before and unchanged since: the opener never waits for the main thread.
      const records = parseFanotify(buf, n).filter((r) => {
        if (init.keepMask && !(r.mask & init.keepMask)) {
          // Not wanted at all (a file created where only new directories matter): never cross threads.
          if (r.fd >= 0) closeNow.push(r.fd);
          return false;
        }
        if (r.pid === process.pid && r.mask & FAN_PERM_MASK) {
          allowNow.push(r.fd);
          closeNow.push(r.fd);
          Atomics.add(shared, SHARED.selfAllowed, 1);
          return false;
        }
        if (init.closeWriteRemovesIgnore && r.fd >= 0 && r.mask & FAN.CLOSE_WRITE) return closedAfterWrite(r);
        return !allowedBefore(r);
      });
      settleNow();
      if (records.length === 0) continue;
      if (Atomics.load(shared, SHARED.inFlight) >= init.maxInFlight) {
        // A held permission event holds an open() on the host: never queue it, answer ALLOW now.
        const notify = records.filter((r) => {
          if (r.fd < 0 || !(r.mask & FAN_PERM_MASK)) return true;
          writeFd(init.fd, fanResponse(r.fd, true));
          Atomics.add(shared, SHARED.failOpen, 1);
          Atomics.add(shared, SHARED.dropped, 1);
          closeFd(r.fd);
          return false;
        });
        if (notify.length > 0) offer(notify);
        continue;
      }
      offer(records);
    }
  }
  for (const r of pending) release(r);
  try {
    closeSync(init.stopFd);
  } catch {}
  postMessage({ stopped: true });
}

/**
 * The mount table's reader: asleep in poll() until the kernel reports a change (POLLPRI on
 * /proc/self/mountinfo; poll itself acknowledges it), then one "changed" record. Changes that come
 * while the main thread is still busy with the last one fold into a single record: it rereads the
 * whole table anyway.
 */
function watchMounts(init: ReaderInit): void {
  const shared = new Int32Array(init.shared);
  let owed = false;
  for (;;) {
    if (owed) {
      // The main thread is still on the previous change: look again shortly (only while one is owed).
      const stop = pollIn([init.stopFd], 5);
      if (typeof stop !== "number" && stop.length > 0) break;
    } else {
      const r = pollChangeOrStop(init.fd, init.stopFd);
      if (typeof r === "number") {
        if (r === -EINTR) continue;
        postMessage({ error: `poll on mountinfo failed (errno ${-r})` });
        return;
      }
      if (r.stop) break;
      if (!r.changed) continue;
    }
    owed = Atomics.load(shared, SHARED.inFlight) >= 1;
    if (owed) continue;
    Atomics.add(shared, SHARED.inFlight, 1);
    postMessage({ records: [{ changed: true }] });
  }
  try {
    closeSync(init.stopFd);
  } catch {}
  postMessage({ stopped: true });
}
