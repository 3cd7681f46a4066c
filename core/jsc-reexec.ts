/**
 * The supervisor (`agent run`) with the hosts' JavaScriptCore options
 * (jsc-options.ts). JavaScriptCore reads its options once, at process
 * start, from BUN_JSC_* variables, so a process can only get them by being
 * started with them. The supervisor is started by systemd or by a user, and
 * a unit file is the wrong place: a unit written by one build would keep
 * the next build from starting if its runtime dropped an option. So the
 * executable decides for itself: `agent run` execve()s its own image
 * (/proc/self/exe: the very file build.ts started with these options, not
 * whatever the path holds now) with the options added, once, before it
 * loads anything. Same PID, same argv, same file descriptors, so systemd's
 * main-PID tracking, the notify socket and the state lock are unaffected;
 * it costs one runtime start (~20 ms) per service start.
 *
 * The re-executed image removes the variables from its own environment
 * again: the processes the supervisor starts (tools, the probe of a new
 * agent build during a software switch) must not inherit options that
 * another runtime may not know. Hosts get them from hostEnv (launch.ts).
 *
 * Nothing happens when the process is not a compiled executable (run from
 * source, the runtime is whatever `bun` is), or when the environment
 * already has any BUN_JSC_* or MIMALLOC_* variable: an operator who sets
 * JavaScriptCore or allocator options chooses them all. A failed execve leaves the process running
 * without the options; nothing else depends on them.
 */
import { FFIType, ptr, read } from "bun:ffi";
import { readFileSync } from "node:fs";
import { AGENT_RUNTIME_ENV } from "./jsc-options.ts";
import { lazyLibc } from "./libc-ffi.ts";

/** Marks the re-executed image, so that it neither loops nor passes the options on. */
export const JSC_REEXEC_MARK = "OUTPOST_JSC_REEXEC";

export type ReexecDecision =
  | { action: "exec"; env: Record<string, string> }
  | { action: "strip"; keys: string[] }
  | { action: "none"; reason: string };

/** What `agent run` does with its environment at start; pure, for tests. */
export function reexecDecision(env: Record<string, string | undefined>, compiled: boolean): ReexecDecision {
  if (env[JSC_REEXEC_MARK] === "1")
    return { action: "strip", keys: [JSC_REEXEC_MARK, ...Object.keys(AGENT_RUNTIME_ENV)] };
  if (!compiled) return { action: "none", reason: "not a compiled executable" };
  const own = Object.keys(env).find((k) => k.startsWith("BUN_JSC_") || k.startsWith("MIMALLOC_"));
  if (own) {
    const what = own.startsWith("MIMALLOC_") ? "allocator" : "JavaScriptCore";
    return { action: "none", reason: `${own} is set: the operator's ${what} options are kept` };
  }
  const next: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) next[k] = v;
  return { action: "exec", env: { ...next, ...AGENT_RUNTIME_ENV, [JSC_REEXEC_MARK]: "1" } };
}

const load = lazyLibc({
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
});

function cString(s: string | Uint8Array): Buffer {
  return Buffer.concat([typeof s === "string" ? Buffer.from(s, "utf8") : s, Buffer.alloc(1)]);
}

/** A NULL-terminated char*[] over `strings`; `keep` holds the buffers alive until execve. */
function cArray(strings: (string | Uint8Array)[], keep: Buffer[]): BigUint64Array {
  const array = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    const b = cString(s);
    keep.push(b);
    array[i] = BigInt(ptr(b));
  });
  return array;
}

/** The argv this process was started with, as bytes: an argument need not be UTF-8. */
function ownArgv(): Uint8Array[] {
  const raw = readFileSync("/proc/self/cmdline");
  const args: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0) {
      args.push(raw.subarray(start, i));
      start = i + 1;
    }
  }
  return args;
}

/**
 * Applies reexecDecision to this process: execve()s (and does not return) or strips the
 * variables. Returns a message only when an exec it should have done failed.
 */
export function reexecWithJscOptions(compiled: boolean, executable = "/proc/self/exe"): string | undefined {
  const decision = reexecDecision(process.env, compiled);
  if (decision.action === "strip") {
    for (const k of decision.keys) delete process.env[k];
    return undefined;
  }
  if (decision.action === "none") return undefined;
  const libc = load();
  if (!libc) return "libc.so.6 could not be opened";
  const keep: Buffer[] = [];
  const argv = cArray(ownArgv(), keep);
  const envp = cArray(
    Object.entries(decision.env).map(([k, v]) => `${k}=${v}`),
    keep,
  );
  const path = cString(executable);
  libc.symbols.execve!(ptr(path), ptr(argv), ptr(envp));
  const errno = read.i32(libc.symbols.__errno_location!(), 0);
  return `execve of ${executable} failed (errno ${errno}); running without the JavaScriptCore options (core/jsc-options.ts)`;
}
