/**
 * The Lua sandbox shared by every Lua content type (Behavior,
 * ProductRulesFeed, RepairKit). It lives beside the handlers rather than in
 * core/ because it is content machinery: the core only moves verified bytes
 * and must stay ignorant of what a rule is.
 *
 * One LuaSandbox is one Lua 5.4 state (wasmoon, i.e. PUC Lua compiled to
 * WebAssembly). The trusted prelude (prelude.lua) builds the restricted
 * environment; this file is the JS half: it creates the state with a
 * hard memory cap enforced by the allocator, moves values across the
 * boundary with the raw C API (no wasmoon proxies: a proxied JS object in
 * Lua would be a way out), and calls trusted Lua entry points.
 *
 * The interpreter itself, and when it is let go, is interpreter.ts's.
 */

import type { LuaEngine } from "wasmoon";
import { HandlerError } from "../../../core/errors.ts";
import { closedEngine, createEngine } from "./interpreter.ts";
import matcherSource from "./matcher.lua" with { type: "text" };
import preludeSource from "./prelude.lua" with { type: "text" };

/** Limits that hold for a whole Lua state. Per-call limits belong to each unit (see prelude.lua). */
export interface SandboxOptions {
  /** Hard cap on everything the state allocates; an allocation past it fails with "not enough memory". */
  stateMemoryBytes: number;
  /** The count hook runs every this many VM instructions. */
  hookInterval: number;
  /** Largest string string.rep may build. */
  maxStringBytes: number;
  /** Patterns whose worst case on a subject exceeds this many steps run on the metered Lua matcher. */
  nativePatternSteps: number;
  sortMax: number;
  moveMax: number;
  /** Most values one C function may return (table.unpack, string.byte, utf8.codepoint). */
  maxResults: number;
}

export const DEFAULT_SANDBOX: SandboxOptions = {
  stateMemoryBytes: 64 * 1024 * 1024,
  hookInterval: 1000,
  maxStringBytes: 1024 * 1024,
  nativePatternSteps: 2_000_000,
  sortMax: 100_000,
  moveMax: 1_000_000,
  maxResults: 8000,
};

/** Lua values as JS sees them: tables become arrays (keys 1..n) or objects. */
export type LuaValue = null | boolean | number | string | LuaValue[] | { [k: string]: LuaValue };

/** A JS function Lua may call (RepairKit's API). Throwing raises a Lua error with the message. */
export type HostFunction = (...args: LuaValue[]) => unknown;

const LUA_REGISTRYINDEX = -1_000_000 - 1000;
const LUA_MULTRET = -1;
const T = { NIL: 0, BOOLEAN: 1, NUMBER: 3, STRING: 4, TABLE: 5, FUNCTION: 6 } as const;
const MAX_DEPTH = 32;

/** The raw exports of the wasm module we use (wasmoon types only its cwrap'd helpers). */
interface Raw {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  _malloc(n: number): number;
  _free(p: number): void;
  addFunction(fn: (...a: number[]) => number, sig: string): number;
  removeFunction(p: number): void;
  _lua_gettop(L: number): number;
  _lua_settop(L: number, i: number): void;
  _lua_type(L: number, i: number): number;
  _lua_absindex(L: number, i: number): number;
  _lua_pushnil(L: number): void;
  _lua_pushboolean(L: number, b: number): void;
  _lua_pushinteger(L: number, n: bigint): void;
  _lua_pushnumber(L: number, n: number): void;
  _lua_pushlstring(L: number, p: number, n: number): number;
  _lua_pushvalue(L: number, i: number): void;
  _lua_pushcclosure(L: number, fn: number, n: number): void;
  _lua_createtable(L: number, narr: number, nrec: number): void;
  _lua_rawseti(L: number, i: number, n: bigint): void;
  _lua_rawset(L: number, i: number): void;
  _lua_rawgeti(L: number, i: number, n: bigint): number;
  _lua_getfield(L: number, i: number, k: number): number;
  _lua_next(L: number, i: number): number;
  _lua_toboolean(L: number, i: number): number;
  _lua_isinteger(L: number, i: number): number;
  _lua_tointegerx(L: number, i: number, isnum: number): bigint;
  _lua_tonumberx(L: number, i: number, isnum: number): number;
  _lua_tolstring(L: number, i: number, len: number): number;
  _lua_topointer(L: number, i: number): number;
  _lua_pcallk(L: number, nargs: number, nres: number, msgh: number, ctx: number, k: number): number;
  _lua_error(L: number): number;
  _luaL_loadbufferx(L: number, buf: number, n: number, name: number, mode: number): number;
  _luaL_ref(L: number, t: number): number;
  _luaL_unref(L: number, t: number, ref: number): void;
}

const encoder = new TextEncoder();

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
const decoder = new TextDecoder();

export class LuaError extends Error {}

export class LuaSandbox {
  private closed = false;
  private scratch = 0;
  private scratchSize = 0;
  private readonly cstrings = new Map<string, number>();
  private readonly hostFns: HostFunction[] = [];
  private readonly hostPtr: number;
  private readonly nowPtr: number;
  private readonly cpuPtr: number;
  private readonly hostMsPtr: number;
  private hostWallMs = 0;
  private hostCpuMs = 0;
  private readonly lenPtr: number;
  /** Registry reference of the table prelude.lua returned (the sandbox internals). */
  readonly internals: number;

  private constructor(
    private readonly engine: LuaEngine,
    private readonly raw: Raw,
    private readonly L: number,
    readonly options: SandboxOptions,
  ) {
    this.hostPtr = raw.addFunction((L: number) => this.dispatchHost(L), "ii");
    this.lenPtr = raw._malloc(8);
    this.nowPtr = raw.addFunction((L: number) => {
      raw._lua_pushnumber(L, performance.now());
      return 1;
    }, "ii");
    // Process CPU time (ms) outside host functions: a call over its wall-clock
    // ceiling is the rule's fault only if the process ran it.
    this.cpuPtr = raw.addFunction((L: number) => {
      raw._lua_pushnumber(L, cpuMs() - this.hostCpuMs);
      return 1;
    }, "ii");
    // Wall-clock ms spent in host functions (RepairKit's fs, trust…): the agent's work, not the rule's.
    this.hostMsPtr = raw.addFunction((L: number) => {
      raw._lua_pushnumber(L, this.hostWallMs);
      return 1;
    }, "ii");
    const results = this.runChunkRefs(preludeSource, "=prelude", [
      {
        hook_interval: options.hookInterval,
        max_string: options.maxStringBytes,
        native_pattern_steps: options.nativePatternSteps,
        sort_max: options.sortMax,
        move_max: options.moveMax,
        matcher_source: matcherSource,
        max_results: options.maxResults,
        state_memory_kb: Math.floor(options.stateMemoryBytes / 1024),
        now: { [CFN]: this.nowPtr },
        cpu: { [CFN]: this.cpuPtr },
        host_ms: { [CFN]: this.hostMsPtr },
      },
    ]);
    this.internals = results[0] ?? 0;
    // From here on the allocator refuses to grow the state past the cap.
    engine.global.setMemoryMax(options.stateMemoryBytes);
  }

  static async create(options: Partial<SandboxOptions> = {}): Promise<LuaSandbox> {
    const opts = { ...DEFAULT_SANDBOX, ...options };
    const engine = await createEngine({
      openStandardLibs: true,
      injectObjects: false,
      enableProxy: false,
      traceAllocations: true,
    });
    const raw = engine.global.lua.module as unknown as Raw;
    try {
      return new LuaSandbox(engine, raw, engine.global.address, opts);
    } catch (e) {
      engine.global.close();
      closedEngine();
      throw e;
    }
  }

  /** Bytes the state currently holds (allocator's count). */
  memoryBytes(): number {
    return this.engine.global.getMemoryUsed();
  }

  /**
   * Runs a trusted chunk with `args`; its results are kept in the registry
   * and their references returned (tables/functions stay in Lua).
   */
  runChunkRefs(source: string, name: string, args: unknown[]): number[] {
    this.assertOpen();
    const { raw, L } = this;
    const top = raw._lua_gettop(L);
    try {
      const bytes = encoder.encode(source);
      const buf = this.buffer(bytes.length);
      raw.HEAPU8.set(bytes, buf);
      const status = raw._luaL_loadbufferx(L, buf, bytes.length, this.cstring(name), this.cstring("t"));
      if (status !== 0) throw new LuaError(`${name}: ${this.errorAt(-1)}`);
      for (const a of args) this.push(L, a, 0);
      this.pcall(args.length, LUA_MULTRET, name);
      const refs: number[] = [];
      const n = raw._lua_gettop(L) - top;
      // luaL_ref pops the top value, so take the results from the top down.
      for (let i = 0; i < n; i++) refs.unshift(raw._luaL_ref(L, LUA_REGISTRYINDEX));
      return refs;
    } finally {
      raw._lua_settop(L, top);
    }
  }

  /** Calls `field` of the table at registry `ref` (a trusted entry point) and converts its results. */
  call(ref: number, field: string, ...args: unknown[]): unknown[] {
    this.assertOpen();
    const { raw, L } = this;
    const top = raw._lua_gettop(L);
    try {
      raw._lua_rawgeti(L, LUA_REGISTRYINDEX, BigInt(ref));
      raw._lua_getfield(L, -1, this.cstring(field));
      for (const a of args) this.push(L, a, 0);
      this.pcall(args.length, LUA_MULTRET, field);
      const out: LuaValue[] = [];
      for (let i = top + 2; i <= raw._lua_gettop(L); i++) out.push(this.read(L, i, 0, new Set()));
      return out;
    } finally {
      raw._lua_settop(L, top);
    }
  }

  /**
   * Like `call`, but the first argument is passed as one Lua string built
   * from raw bytes: the cheap way to move a batch across the boundary.
   */
  callWithBytes(ref: number, field: string, bytes: Uint8Array, ...args: unknown[]): unknown[] {
    this.assertOpen();
    const { raw, L } = this;
    const top = raw._lua_gettop(L);
    try {
      raw._lua_rawgeti(L, LUA_REGISTRYINDEX, BigInt(ref));
      raw._lua_getfield(L, -1, this.cstring(field));
      const buf = this.buffer(bytes.length);
      raw.HEAPU8.set(bytes, buf);
      raw._lua_pushlstring(L, buf, bytes.length);
      for (const a of args) this.push(L, a, 0);
      this.pcall(args.length + 1, LUA_MULTRET, field);
      const out: LuaValue[] = [];
      for (let i = top + 2; i <= raw._lua_gettop(L); i++) out.push(this.read(L, i, 0, new Set()));
      return out;
    } finally {
      raw._lua_settop(L, top);
    }
  }

  /** Releases a registry reference returned by runChunkRefs. */
  unref(ref: number): void {
    if (!this.closed) this.raw._luaL_unref(this.L, LUA_REGISTRYINDEX, ref);
  }

  /**
   * A Lua-callable JS function, as an opaque handle to pass in `args`
   * (`{ [HOST]: id }`). Its arguments arrive converted; its result is
   * pushed back; a throw becomes a Lua error carrying the message.
   */
  hostFunction(fn: HostFunction): HostFunctionHandle {
    this.hostFns.push(fn);
    return { [HOST]: this.hostFns.length - 1 };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.global.close();
    this.raw.removeFunction(this.hostPtr);
    this.raw.removeFunction(this.nowPtr);
    this.raw.removeFunction(this.cpuPtr);
    this.raw.removeFunction(this.hostMsPtr);
    if (this.scratch) this.raw._free(this.scratch);
    this.raw._free(this.lenPtr);
    for (const p of this.cstrings.values()) this.raw._free(p);
    this.cstrings.clear();
    closedEngine();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private assertOpen(): void {
    if (this.closed) throw new HandlerError("HND_LUA_CLOSED", "the Lua state has been closed");
  }

  private pcall(nargs: number, nres: number, what: string): void {
    const status = this.raw._lua_pcallk(this.L, nargs, nres, 0, 0, 0);
    if (status !== 0) throw new LuaError(`${what}: ${this.errorAt(-1)}`);
  }

  private errorAt(idx: number): string {
    const v = this.read(this.L, idx, MAX_DEPTH, new Set());
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  /** A scratch buffer in wasm memory of at least `n` bytes (outside the Lua allocator's count). */
  private buffer(n: number): number {
    if (n > this.scratchSize) {
      if (this.scratch) this.raw._free(this.scratch);
      this.scratchSize = Math.max(n, 64 * 1024);
      this.scratch = this.raw._malloc(this.scratchSize);
      if (!this.scratch) throw new HandlerError("HND_LUA_NO_MEMORY", `cannot allocate ${n} bytes for Lua`);
    }
    return this.scratch;
  }

  /** NUL-terminated copies of field names and chunk names, kept for the sandbox's lifetime. */
  private cstring(s: string): number {
    let p = this.cstrings.get(s);
    if (p === undefined) {
      const b = encoder.encode(`${s}\0`);
      p = this.raw._malloc(b.length);
      this.raw.HEAPU8.set(b, p);
      this.cstrings.set(s, p);
    }
    return p;
  }

  private pushString(L: number, s: string | Uint8Array): void {
    const bytes = typeof s === "string" ? encoder.encode(s) : s;
    // Not the scratch buffer: a batch may be sitting there while its call pushes results.
    const p = this.raw._malloc(bytes.length || 1);
    try {
      this.raw.HEAPU8.set(bytes, p);
      this.raw._lua_pushlstring(L, p, bytes.length);
    } finally {
      this.raw._free(p);
    }
  }

  private push(L: number, v: unknown, depth: number): void {
    const { raw } = this;
    if (depth > MAX_DEPTH) throw new HandlerError("HND_LUA_VALUE", "value nested too deeply for Lua");
    if (v === null || v === undefined) raw._lua_pushnil(L);
    else if (typeof v === "boolean") raw._lua_pushboolean(L, v ? 1 : 0);
    else if (typeof v === "number") {
      if (Number.isSafeInteger(v)) raw._lua_pushinteger(L, BigInt(v));
      else raw._lua_pushnumber(L, v);
    } else if (typeof v === "string" || v instanceof Uint8Array) this.pushString(L, v);
    else if (Array.isArray(v)) {
      raw._lua_createtable(L, v.length, 0);
      v.forEach((item, i) => {
        this.push(L, item, depth + 1);
        raw._lua_rawseti(L, -2, BigInt(i + 1));
      });
    } else if (typeof v === "object" && CFN in v) {
      raw._lua_pushcclosure(L, (v as { [CFN]: number })[CFN], 0);
    } else if (typeof v === "object" && REF in v) {
      raw._lua_rawgeti(L, LUA_REGISTRYINDEX, BigInt((v as LuaRef)[REF]));
    } else if (typeof v === "object" && HOST in v) {
      raw._lua_pushinteger(L, BigInt((v as HostFunctionHandle)[HOST]));
      raw._lua_pushcclosure(L, this.hostPtr, 1);
    } else if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>);
      raw._lua_createtable(L, 0, entries.length);
      for (const [k, item] of entries) {
        if (item === undefined) continue;
        this.pushString(L, k);
        this.push(L, item, depth + 1);
        raw._lua_rawset(L, -3);
      }
    } else {
      throw new HandlerError("HND_LUA_VALUE", `cannot pass a ${typeof v} to Lua`);
    }
  }

  private readString(L: number, idx: number): string {
    const p = this.raw._lua_tolstring(L, idx, this.lenPtr);
    const len = this.raw.HEAPU32[this.lenPtr >> 2] ?? 0;
    return decoder.decode(this.raw.HEAPU8.subarray(p, p + len));
  }

  private read(L: number, idx: number, depth: number, seen: Set<number>): LuaValue {
    const { raw } = this;
    idx = raw._lua_absindex(L, idx);
    switch (raw._lua_type(L, idx)) {
      case T.NIL:
        return null;
      case T.BOOLEAN:
        return raw._lua_toboolean(L, idx) !== 0;
      case T.NUMBER:
        return raw._lua_isinteger(L, idx)
          ? Number(raw._lua_tointegerx(L, idx, 0))
          : raw._lua_tonumberx(L, idx, 0);
      case T.STRING:
        return this.readString(L, idx);
      case T.TABLE: {
        const ptr = raw._lua_topointer(L, idx);
        if (depth >= MAX_DEPTH || seen.has(ptr)) return null;
        seen.add(ptr);
        const entries: [string | number, LuaValue][] = [];
        raw._lua_pushnil(L);
        while (raw._lua_next(L, idx) !== 0) {
          const kt = raw._lua_type(L, -2);
          // Never tolstring a key in place: it would confuse lua_next.
          let key: string | number | undefined;
          if (kt === T.NUMBER) {
            key = raw._lua_isinteger(L, -2)
              ? Number(raw._lua_tointegerx(L, -2, 0))
              : raw._lua_tonumberx(L, -2, 0);
          } else if (kt === T.STRING) {
            key = this.readString(L, -2);
          }
          if (key !== undefined) entries.push([key, this.read(L, -1, depth + 1, seen)]);
          raw._lua_settop(L, -2);
        }
        seen.delete(ptr);
        const n = entries.length;
        if (entries.every(([k]) => typeof k === "number" && Number.isInteger(k) && k >= 1 && k <= n)) {
          const arr: LuaValue[] = new Array(n);
          for (const [k, v] of entries) arr[(k as number) - 1] = v;
          return arr;
        }
        return Object.fromEntries(entries.map(([k, v]) => [String(k), v]));
      }
      default:
        return null;
    }
  }

  private dispatchHost(L: number): number {
    const { raw } = this;
    let failure: string | undefined;
    let pushed = 0;
    const wall0 = performance.now();
    const cpu0 = cpuMs();
    try {
      const id = Number(raw._lua_tointegerx(L, LUA_REGISTRYINDEX - 1, 0));
      const fn = this.hostFns[id];
      if (!fn) throw new Error("unknown host function");
      const n = raw._lua_gettop(L);
      const args: LuaValue[] = [];
      for (let i = 1; i <= n; i++) args.push(this.read(L, i, 0, new Set()));
      const result = fn(...args);
      if (result !== undefined) {
        this.push(L, result, 0);
        pushed = 1;
      }
    } catch (e) {
      // Emscripten unwinds a Lua error (longjmp) by throwing Infinity: it must pass through untouched.
      if (e === Number.POSITIVE_INFINITY) throw e;
      failure = e instanceof Error ? e.message : String(e);
    } finally {
      this.hostWallMs += performance.now() - wall0;
      this.hostCpuMs += cpuMs() - cpu0;
    }
    if (failure === undefined) return pushed;
    raw._lua_settop(L, 0);
    this.pushString(L, failure);
    // Raises (unwinds through this JS frame back into Lua's error handler); never returns.
    return raw._lua_error(L);
  }
}

export const HOST = Symbol("outpost.lua.host");
export const REF = Symbol("outpost.lua.ref");
const CFN = Symbol("outpost.lua.cfunction");
/** Passes a value held in the registry (e.g. the sandbox internals) as an argument. */
export interface LuaRef {
  [REF]: number;
}
export const luaRef = (ref: number): LuaRef => ({ [REF]: ref });
export interface HostFunctionHandle {
  [HOST]: number;
}
