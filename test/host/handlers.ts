/**
 * Misbehaving handlers for the host-process tests (never registered in
 * production). Host processes import this module by URL, so it stays free
 * of side effects and heavy imports.
 *
 * Crashy (group `crashy`), payload `data.txt`:
 *   EXIT-ON-LOAD     load() exits the host (a defect validation cannot see)
 *   EXIT-AFTER-LOAD  load() succeeds, then the host exits right after answering
 *   anything else    loads; calls: read, abort (SIGABRT), hang {ms}, wait|sleep {ms}, hog {mb}, emit {n, type}
 * Echo (group `echo`): scan {data} → a small verdict, for the IPC benchmark.
 * Spinner (group `spinner`, cpuSeconds 1): spin burns CPU until RLIMIT_CPU ends it.
 * Headed (group `echo`): declares `big.bin` headOnly (16 bytes); load records what its view gives
 *   (head, size) and refuses (read, a longer head); call `seen` returns that.
 */
import { HandlerError } from "../../core/errors.ts";
import { defineHandler } from "../../core/handler/contract.ts";
import { HandlerRegistry } from "../../core/handler/registry.ts";
import { defineGroup } from "../../core/host/policy.ts";

const NOTHING = { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false } as const;

export const crashyGroup = defineGroup({
  name: "crashy",
  description: "tests: handlers that crash their host",
  runAs: "agent",
  net: "none",
  exec: false,
});

const hoard: Uint8Array[] = [];

export const crashyHandler = defineHandler<{ text: string; version: number }>({
  manifest: {
    name: "Crashy",
    description: "crashes its host on demand",
    group: "crashy",
    privileges: NOTHING,
    limits: { memoryMb: 64, cpuSeconds: 60 },
    // `wait` may take longer than hosts.callTimeoutSeconds (test/host/call-timeout.test.ts).
    callTimeoutSeconds: { wait: 5 },
  },
  validate(view) {
    view.readText("data.txt");
  },
  load(view, caps) {
    const text = view.readText("data.txt");
    if (text.includes("EXIT-ON-LOAD")) process.exit(70);
    // After this load has been answered: the host dies while its content is live. Not at once: on a
    // loaded machine an exit on the next tick beat the load's answer out of the pipe, and the content
    // then looked as if it never loaded (the reload-failed path, not the crash loop this fixture is for).
    if (text.includes("EXIT-AFTER-LOAD")) setTimeout(() => process.exit(71), 250);
    caps.log.info("crashy loaded", { version: view.version });
    return { text, version: view.version };
  },
  status: (l) => ({ chars: l.text.length }),
  call(l, method, args, ctx) {
    const a = (args ?? {}) as { ms?: number; mb?: number; n?: number; type?: string };
    switch (method) {
      case "read":
        return { text: l.text, version: l.version, pid: process.pid };
      case "abort":
        process.abort();
        return null;
      case "hang": {
        const until = Date.now() + (a.ms ?? 60_000);
        while (Date.now() < until && !ctx?.signal.aborted) {
          // A handler stuck in a synchronous loop: only its process can be stopped.
        }
        return { hung: true };
      }
      case "wait":
      case "sleep":
        // Asleep, not stuck: the host still answers heartbeats.
        return Bun.sleep(a.ms ?? 0).then(() => ({ waited: a.ms ?? 0 }));
      case "hog": {
        // Touch every page so the memory is resident, not merely reserved.
        for (let i = 0; i < (a.mb ?? 512); i++) hoard.push(new Uint8Array(1024 * 1024).fill(1));
        return { held: hoard.length };
      }
      default:
        throw new HandlerError("HND_NO_METHOD", `Crashy: no method ${method}`);
    }
  },
});

export const echoGroup = defineGroup({
  name: "echo",
  description: "benchmarks: bytes in, verdict out",
  runAs: "agent",
  net: "none",
  exec: false,
});

/** A scan-shaped API: the caller sends bytes, the handler answers with a small verdict. */
export const echoHandler = defineHandler<{ version: number }>({
  manifest: { name: "Echo", description: "scan-shaped echo", group: "echo", privileges: NOTHING },
  validate() {},
  load: (view) => ({ version: view.version }),
  call(_l, method, args) {
    const data = (args as { data?: unknown })?.data;
    if (method !== "scan" || !(data instanceof Uint8Array)) {
      throw new HandlerError("HND_NO_METHOD", "Echo: scan {data: Uint8Array}");
    }
    let x = 0;
    for (let i = 0; i < data.length; i += 4096) x ^= data[i]!;
    return { bytes: data.length, verdict: x === 255 ? "suspicious" : "clean" };
  },
});

/** What a view refuses, as the error code (or "allowed"). */
function refusal(f: () => unknown): string {
  try {
    f();
    return "allowed";
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

export const HEADED_HEAD_BYTES = 16;

export const headedHandler = defineHandler<Record<string, unknown>>({
  manifest: {
    name: "Headed",
    description: "reads only the head of big.bin",
    group: "echo",
    privileges: NOTHING,
    limits: { memoryMb: 64, cpuSeconds: 60 },
    headOnly: { "big.bin": HEADED_HEAD_BYTES },
  },
  validate(view) {
    view.head("big.bin", HEADED_HEAD_BYTES);
  },
  load(view) {
    return {
      version: view.version,
      head: Buffer.from(view.head("big.bin", HEADED_HEAD_BYTES)).toString("hex"),
      size: view.size("big.bin"),
      about: view.readText("about.txt"),
      read: refusal(() => view.read("big.bin")),
      readText: refusal(() => view.readText("big.bin")),
      longerHead: refusal(() => view.head("big.bin", HEADED_HEAD_BYTES + 1)),
      negativeHead: refusal(() => view.head("about.txt", -1)),
      pid: process.pid,
    };
  },
  call(l, method) {
    if (method !== "seen") throw new HandlerError("HND_NO_METHOD", "Headed: seen");
    return l;
  },
});

export const spinnerGroup = defineGroup({
  name: "spinner",
  description: "tests: burns CPU",
  runAs: "agent",
  net: "none",
  exec: false,
});

/** Declares a 1 s CPU budget and spends it on request. */
export const spinnerHandler = defineHandler<object>({
  manifest: {
    name: "Spinner",
    description: "busy loop on demand",
    group: "spinner",
    privileges: NOTHING,
    limits: { memoryMb: 64, cpuSeconds: 1 },
  },
  validate() {},
  load: () => ({}),
  call(_l, method) {
    if (method !== "spin") throw new HandlerError("HND_NO_METHOD", "Spinner: spin");
    for (;;) {
      // Until RLIMIT_CPU stops the process.
    }
  },
});

export function hostTestRegistry(): HandlerRegistry {
  return new HandlerRegistry()
    .registerGroup(crashyGroup)
    .registerGroup(echoGroup)
    .registerGroup(spinnerGroup)
    .register(crashyHandler, import.meta.url)
    .register(echoHandler, import.meta.url)
    .register(headedHandler, import.meta.url)
    .register(spinnerHandler, import.meta.url);
}
