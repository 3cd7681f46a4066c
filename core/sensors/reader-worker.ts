/**
 * A reader thread: blocks in one poll() over every kernel sensor fd it
 * serves (no CPU while nothing happens — this is what replaced the 250 ms
 * /proc sweep) and hands each fd's decoded records to the main thread
 * (reader-fd.ts has what is done per fd). The process connector, NFLOG,
 * inotify, notification-only fanotify and the mount table share one such
 * thread: every thread is a JavaScriptCore VM of its own, ~1.2–2 MiB of
 * heap and a GC of its own (issue 21, footprint). Only on-access's
 * fanotify, whose permission events hold an open() until answered, gets a
 * thread to itself, so a burst on another fd never delays an answer.
 *
 * Control: the main thread posts `add` and `remove` commands on a
 * MessagePort and writes a byte to the thread's wake pipe; the thread,
 * which returns to its event loop only for one turn after each of its
 * collections (below), takes them with receiveMessageOnPort. With nothing
 * left to serve it returns and the main thread ends it.
 */
import { closeSync } from "node:fs";
import { type MessagePort, receiveMessageOnPort } from "node:worker_threads";
import { EINTR, POLLIN, pollEvents, readFd } from "./libc.ts";
import type { ReaderInit } from "./reader.ts";
import { FdReader, type ReaderPost } from "./reader-fd.ts";

declare const self: Worker;

/** The first message a reader thread gets. */
export interface ThreadStart {
  port: MessagePort;
  /** Read end of the wake pipe: a byte there means commands wait on `port`. */
  wakeFd: number;
  /** Quiet time after a burst before the thread collects its own heap, ms. */
  quietMs: number;
  /** At most one such collection per this many ms. */
  gcIntervalMs: number;
}

export type ThreadCommand = { add: ReaderInit & { id: number } } | { remove: number } | { exit: true };

self.onmessage = (m: MessageEvent<ThreadStart>) => serve(m.data);

function serve(start: ThreadStart): void {
  const post = (m: ReaderPost) => postMessage(m);
  const readers: FdReader[] = [];
  const wakeBuf = new Uint8Array(64);
  const remove = (r: FdReader, error?: string) => {
    const at = readers.indexOf(r);
    if (at < 0) return;
    readers.splice(at, 1);
    r.drop();
    post(error === undefined ? { id: r.init.id, stopped: true } : { id: r.init.id, error });
  };
  /** Applies what the main thread posted; false once it asked the thread to exit. */
  const commands = (): boolean => {
    for (let c = receiveMessageOnPort(start.port); c; c = receiveMessageOnPort(start.port)) {
      const cmd = c.message as ThreadCommand;
      if ("exit" in cmd) return false;
      if ("add" in cmd) readers.push(new FdReader(cmd.add, post));
      else {
        const r = readers.find((x) => x.init.id === cmd.remove);
        if (r) remove(r);
        else post({ id: cmd.remove, stopped: true });
      }
    }
    return true;
  };
  // The thread does not return to its event loop while it serves, so no GC timer runs here (and the
  // agent runs with BUN_GC_TIMER_DISABLE anyway): a burst's decoded records stayed on this heap until
  // allocation pressure happened to trigger a collection. Once every fd has been quiet for quietMs
  // after a burst the thread collects once; an idle thread still blocks with no timeout. At most one
  // collection per gcIntervalMs, so a trickle (a cron job every few seconds) cannot turn into a full
  // collection every few seconds (the same rule as core/host/idle-gc.ts).
  let collectedAt = Number.NEGATIVE_INFINITY;
  const gcWait = () => Math.max(start.quietMs, collectedAt + start.gcIntervalMs - Date.now());
  let running = commands();
  const loop = (): void => {
    while (running) {
      const waiting = readers.some((r) => r.waiting);
      const garbage = readers.some((r) => r.dirty);
      // Idle: block with no timeout (no CPU). With records held back, look again every few ms.
      const polled = [...readers];
      const fds = [start.wakeFd, ...polled.map((r) => r.fd)];
      const events = [POLLIN, ...polled.map((r) => r.events)];
      const revents = pollEvents(fds, events, waiting ? 5 : garbage ? gcWait() : -1);
      if (typeof revents === "number") {
        if (revents === -EINTR) continue;
        for (const r of polled) remove(r, `poll failed (errno ${-revents})`);
        running = commands();
        continue;
      }
      if (revents[0]) {
        readFd(start.wakeFd, wakeBuf);
        running = commands();
      }
      let any = false;
      polled.forEach((r, i) => {
        const ev = revents[i + 1] ?? 0;
        // Removed by a command just now: its fd may be closed, even reused by the next reader.
        if (ev === 0 || !readers.includes(r)) return;
        any = true;
        let problem: string | undefined;
        try {
          problem = r.onReady(ev);
        } catch (e) {
          problem = (e as Error).message;
        }
        if (problem !== undefined) remove(r, problem);
      });
      for (const r of readers) r.flush();
      if (!any && !revents[0] && garbage && !waiting && Date.now() - collectedAt >= start.gcIntervalMs) {
        collectedAt = Date.now();
        Bun.gc(true);
        for (const r of readers) if (r.dirty) r.collected();
        // The collection frees the records, not the code the burst compiled: the optimizing JIT's
        // code and metadata for the decode loop stayed, ~5 MiB of the thread's ~8.5 MiB after 1,000
        // execs (with the DFG off, 10.3 MiB of the process instead of 15.1). JavaScriptCore drops
        // compiled code only when its VM is idle, and this VM never is: so once per collection the
        // thread asks for the shrink and returns to its event loop for one turn, where it runs, then
        // comes back to poll. Events wait in the kernel's queues meanwhile, as during the collection.
        (Bun as { shrink?: () => void }).shrink?.();
        setTimeout(loop, 0);
        return;
      }
    }
    for (const r of [...readers]) remove(r);
    try {
      closeSync(start.wakeFd);
    } catch {}
    postMessage({ exited: true });
  };
  loop();
}
