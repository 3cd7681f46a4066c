/**
 * The one Lua interpreter (wasmoon's WebAssembly instance) of a process, and
 * when it is let go. Every LuaSandbox is a Lua state inside this instance;
 * the instance's linear memory only grows, and what a closed state freed
 * stays resident (issue 21, Footprint: the appfeed host held a 16 MiB
 * WebAssembly.Memory between hourly runs, 23 of its 31 MiB PSS).
 *
 * So the instance is dropped `releaseAfterMs` after its last sandbox closes —
 * after a run of APPFEED or RepairKit rules, or when Behavior content is
 * unloaded — and a collection returns its memory. The next sandbox builds a
 * new instance (~70 ms from source; hourly for APPFEED). A sandbox opened
 * within the delay (Behavior validates, closes, then loads) reuses it.
 *
 * Two things besides our own reference keep an instance alive, both from
 * the Emscripten glue inside wasmoon: it defines accessor properties on
 * globalThis (`buffer`, `asm` and a hundred "not included" stubs) whose
 * getters close over the module scope, and with it the memory. Those the
 * instance added are deleted when it is dropped; the glue defines them
 * again for the next one.
 *
 * A host run from source that runs Lua reads and compiles the interpreter
 * as soon as this module is imported: it then locks itself down with
 * Landlock, and glue.wasm is a file under node_modules it may no longer read
 * by the time content loads — so such a process keeps its instance. The
 * compiled binary serves glue.wasm from its own embedded files, readable
 * after Landlock; other processes are not locked down — nor should every
 * host pay ~20 MiB for an interpreter it never runs.
 */
import { type LuaEngine, LuaFactory } from "wasmoon";
// Embedded into the compiled binary (`with { type: "file" }`): the agent loads the interpreter from itself.
import wasmPath from "wasmoon/dist/glue.wasm" with { type: "file" };
import { collectIdle } from "../../../core/host/idle-gc.ts";

/** How long an interpreter with no open sandbox is kept for the next one. */
export const RELEASE_AFTER_MS = 10_000;

type EngineOptions = NonNullable<Parameters<LuaFactory["createEngine"]>[0]>;

interface Instance {
  factory: LuaFactory;
  /** Own properties of globalThis the glue added while the instance was built. */
  glueGlobals: Set<string>;
  ready: Promise<void>;
}

let current: Instance | undefined;
let open = 0;
let releaseAfterMs = RELEASE_AFTER_MS;
let releaseTimer: ReturnType<typeof setTimeout> | undefined;
/** Instances built and dropped since start (tests, status). */
export const interpreterCounters = { built: 0, released: 0 };

function instance(): Instance {
  if (current) return current;
  const before = new Set(Object.getOwnPropertyNames(globalThis));
  const factory = new LuaFactory(wasmPath);
  const glueGlobals = new Set<string>();
  const ready = factory.getLuaModule().then(() => {
    for (const k of Object.getOwnPropertyNames(globalThis)) if (!before.has(k)) glueGlobals.add(k);
  });
  interpreterCounters.built++;
  current = { factory, glueGlobals, ready };
  return current;
}

/** A new Lua state in the process's interpreter; pair every engine with `closedEngine()`. */
export async function createEngine(options: EngineOptions): Promise<LuaEngine> {
  open++;
  if (releaseTimer) {
    clearTimeout(releaseTimer);
    releaseTimer = undefined;
  }
  try {
    const i = instance();
    await i.ready;
    return await i.factory.createEngine(options);
  } catch (e) {
    closedEngine();
    throw e;
  }
}

/** Sets the delay before an unused interpreter is dropped (tests); returns the previous one. */
export function setReleaseDelay(ms: number): number {
  const was = releaseAfterMs;
  releaseAfterMs = ms;
  return was;
}

/** A state of the interpreter was closed: with none left, drop the interpreter after the delay. */
export function closedEngine(): void {
  open = Math.max(0, open - 1);
  if (open > 0 || !current || keepsInstance || releaseTimer) return;
  releaseTimer = setTimeout(() => {
    releaseTimer = undefined;
    releaseInterpreter();
  }, releaseAfterMs);
  // Never what keeps a process alive.
  (releaseTimer as { unref?: () => void }).unref?.();
}

/**
 * Drops the interpreter now if no sandbox is open; returns whether it did.
 * The glue's globals go first (they hold the module scope), then a full
 * collection and a shrink return the instance's memory.
 */
export function releaseInterpreter(): boolean {
  if (open > 0 || !current || keepsInstance) return false;
  const { glueGlobals } = current;
  current = undefined;
  for (const k of glueGlobals) {
    const d = Object.getOwnPropertyDescriptor(globalThis, k);
    // Only the glue's own shape: configurable accessors. Anything else that appeared meanwhile stays.
    if (d?.configurable && (d.get || d.set)) delete (globalThis as Record<string, unknown>)[k];
  }
  interpreterCounters.released++;
  // A collection now, and the allocators' free pages back: the process holds nothing hot until the next run.
  collectIdle(true);
  return true;
}

/** Lua states open in this process right now. */
export function openEngines(): number {
  return open;
}

function locksDownFromSource(argv = process.argv): boolean {
  const compiled = import.meta.url.includes("/$bunfs/") || Bun.main.startsWith("/$bunfs/");
  const at = argv.indexOf("--group");
  return (
    !compiled &&
    argv.includes("host") &&
    at >= 0 &&
    ["behavior", "repair", "appfeed"].includes(argv[at + 1] ?? "")
  );
}

const keepsInstance = locksDownFromSource();
if (keepsInstance) {
  instance().ready.catch(() => {
    // Reported by the first createEngine, which awaits the same promise.
  });
}
