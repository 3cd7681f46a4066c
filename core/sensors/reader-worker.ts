/**
 * The reader thread of one kernel sensor fd. It blocks in poll() (no CPU
 * while nothing happens — this is what replaced the 250 ms /proc sweep),
 * decodes each read, and for process execs reads /proc at once, before the
 * next datagram, because a short-lived process is gone a millisecond later.
 *
 * Back-pressure: batches in flight to the main thread are counted in shared
 * memory; over the limit the batch is dropped and counted, never queued.
 * Dropped fanotify permission events are answered ALLOW here (fail-open) and
 * their fds closed, so a flood can never hang an open() on the host.
 * Permission events from this very process are allowed here at once.
 */
import { closeSync } from "node:fs";
import { closeFd, EAGAIN, EINTR, ENOBUFS, pollIn, readFd, writeFd } from "./libc.ts";
import { parseNflog } from "./nflog-parse.ts";
import { FAN_PERM_MASK, fanResponse, parseConnector, parseFanotify, parseInotify } from "./parse.ts";
import { type ProcDetails, readProc } from "./proc-read.ts";
import { type ReaderInit, SHARED } from "./reader.ts";

declare const self: Worker;

type Wire = ReturnType<typeof parseConnector>[number] & { proc?: ProcDetails | null };

self.onmessage = (m: MessageEvent<ReaderInit>) => run(m.data);

function run(init: ReaderInit): void {
  const shared = new Int32Array(init.shared);
  const buf = new Uint8Array(init.bufBytes);
  for (;;) {
    const ready = pollIn([init.fd, init.stopFd], -1);
    if (typeof ready === "number") {
      if (ready === -EINTR) continue;
      postMessage({ error: `poll failed (errno ${-ready})` });
      return;
    }
    if (ready.includes(init.stopFd)) break;
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
      // then post once. Fewer, larger batches keep the main thread's cost per exec low in a burst.
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
      if (records.length === 0) continue;
      if (Atomics.load(shared, SHARED.inFlight) >= init.maxInFlight) {
        for (const r of records) if (r.proc?.exeFd !== undefined) closeFd(r.proc.exeFd);
        Atomics.add(shared, SHARED.dropped, records.length);
        continue;
      }
      Atomics.add(shared, SHARED.inFlight, 1);
      postMessage({ records });
    } else if (init.kind === "inotify" || init.kind === "nflog") {
      const records = init.kind === "nflog" ? parseNflog(buf, n) : parseInotify(buf, n);
      if (records.length === 0) continue;
      if (Atomics.load(shared, SHARED.inFlight) >= init.maxInFlight) {
        Atomics.add(shared, SHARED.dropped, records.length);
        continue;
      }
      Atomics.add(shared, SHARED.inFlight, 1);
      postMessage({ records });
    } else {
      let records = parseFanotify(buf, n);
      // Our own opens are answered here, on this thread: the main thread may be the one blocked in
      // that open (a sync read of a watched file), and it cannot answer while it waits (no self-deadlock).
      if (records.some((r) => r.pid === process.pid && r.mask & FAN_PERM_MASK)) {
        records = records.filter((r) => {
          if (r.pid !== process.pid || !(r.mask & FAN_PERM_MASK)) return true;
          writeFd(init.fd, fanResponse(r.fd, true));
          closeFd(r.fd);
          Atomics.add(shared, SHARED.selfAllowed, 1);
          return false;
        });
      }
      if (records.length === 0) continue;
      if (Atomics.load(shared, SHARED.inFlight) >= init.maxInFlight) {
        for (const r of records) {
          if (r.fd < 0) continue;
          if (r.mask & FAN_PERM_MASK) {
            writeFd(init.fd, fanResponse(r.fd, true));
            Atomics.add(shared, SHARED.failOpen, 1);
          }
          closeFd(r.fd);
        }
        Atomics.add(shared, SHARED.dropped, records.length);
        continue;
      }
      Atomics.add(shared, SHARED.inFlight, 1);
      postMessage({ records });
    }
  }
  try {
    closeSync(init.stopFd);
  } catch {}
  postMessage({ stopped: true });
}
