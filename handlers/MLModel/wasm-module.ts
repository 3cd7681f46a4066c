/**
 * Reads a WebAssembly binary's sections and rewrites it with a fuel counter.
 *
 * Why: WASM execution cannot be interrupted from JavaScript (Bun's
 * Worker.terminate() leaves a spinning WASM loop burning its core), so a
 * model's loops must stop themselves. `meter()` adds one mutable i32 global
 * and, at the head of every `loop`, code that traps when it reaches zero and
 * otherwise decrements it. The host sets the global before each call, which
 * bounds every score to a fixed number of loop iterations (rule M10).
 *
 * Only the MVP instruction set plus the bulk-memory/saturating-conversion
 * (0xFC) prefix is accepted: SIMD, threads and exceptions are refused (M3),
 * so every instruction boundary in a body is known and the rewrite is exact.
 * Pure: bytes in, facts or bytes out; nothing here runs the module.
 */

export class WasmFormatError extends Error {}

class Reader {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    pos = 0,
    readonly end = b.length,
  ) {
    this.pos = pos;
  }
  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError(`unexpected end at byte ${this.pos}`);
    return this.b[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const x = this.byte();
      result |= (x & 0x7f) << shift;
      if ((x & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
    throw new WasmFormatError(`LEB128 too long at byte ${this.pos}`);
  }
  /** Signed LEB of up to `bits`: only its length matters here. */
  sleb(bits: number): void {
    const max = Math.ceil(bits / 7);
    for (let i = 0; i < max; i++) if ((this.byte() & 0x80) === 0) return;
    throw new WasmFormatError(`LEB128 too long at byte ${this.pos}`);
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw new WasmFormatError(`unexpected end at byte ${this.pos}`);
    this.pos += n;
  }
  name(): string {
    const n = this.u32();
    const s = new TextDecoder().decode(this.b.subarray(this.pos, this.pos + n));
    this.skip(n);
    return s;
  }
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let x = n & 0x7f;
    n >>>= 7;
    if (n !== 0) x |= 0x80;
    out.push(x);
  } while (n !== 0);
  return out;
}

export interface Section {
  id: number;
  /** Offsets of the section's contents (after id and size). */
  start: number;
  end: number;
}

export interface MemoryLimits {
  min: number;
  max: number | null;
}

export interface WasmFacts {
  sections: Section[];
  imports: { module: string; name: string; kind: number }[];
  memories: MemoryLimits[];
  globals: number;
  /** Number of `loop` instructions across all bodies. */
  loops: number;
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

export function sections(b: Uint8Array): Section[] {
  if (b.length < 8 || MAGIC.some((x, i) => b[i] !== x))
    throw new WasmFormatError("not a WebAssembly 1.0 binary (bad magic or version)");
  const r = new Reader(b, 8);
  const out: Section[] = [];
  while (r.pos < b.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    r.skip(size);
    out.push({ id, start, end: start + size });
  }
  return out;
}

function limits(r: Reader): MemoryLimits {
  const flags = r.byte();
  if (flags > 1)
    throw new WasmFormatError(`memory limits flag ${flags} (shared or 64-bit memory) not allowed`);
  const min = r.u32();
  return { min, max: flags === 1 ? r.u32() : null };
}

/** Walks one instruction sequence; calls `onLoop(posAfterBlockType)` for each `loop`. */
function walkExpr(r: Reader, onLoop?: (pos: number) => void): void {
  const blockType = () => {
    const t = r.b[r.pos]!;
    if (t === 0x40 || t === 0x7f || t === 0x7e || t === 0x7d || t === 0x7c || t === 0x70 || t === 0x6f)
      r.pos++;
    else r.sleb(33);
  };
  while (r.pos < r.end) {
    const op = r.byte();
    if (op === 0x02 || op === 0x04) blockType();
    else if (op === 0x03) {
      blockType();
      onLoop?.(r.pos);
    } else if (op === 0x0c || op === 0x0d || op === 0x10) r.u32();
    else if (op === 0x0e) {
      const n = r.u32();
      for (let i = 0; i <= n; i++) r.u32();
    } else if (op === 0x11) {
      r.u32();
      r.u32();
    } else if (op === 0x1c) {
      const n = r.u32();
      r.skip(n);
    } else if (op >= 0x20 && op <= 0x26) r.u32();
    else if (op >= 0x28 && op <= 0x3e) {
      r.u32();
      r.u32();
    } else if (op === 0x3f || op === 0x40) r.byte();
    else if (op === 0x41) r.sleb(32);
    else if (op === 0x42) r.sleb(64);
    else if (op === 0x43) r.skip(4);
    else if (op === 0x44) r.skip(8);
    else if (op === 0xd0) r.byte();
    else if (op === 0xd2) r.u32();
    else if (op === 0xfc) {
      const sub = r.u32();
      if (sub <= 7) {
        // saturating truncations: no immediates
      } else if (sub === 8) {
        r.u32();
        r.byte();
      } else if (sub === 9 || sub === 13 || (sub >= 15 && sub <= 17)) r.u32();
      else if (sub === 10) {
        r.byte();
        r.byte();
      } else if (sub === 11) r.byte();
      else if (sub === 12 || sub === 14) {
        r.u32();
        r.u32();
      } else throw new WasmFormatError(`instruction 0xfc ${sub} not allowed`);
    } else if (
      op === 0x00 ||
      op === 0x01 ||
      op === 0x05 ||
      op === 0x0b ||
      op === 0x0f ||
      op === 0x1a ||
      op === 0x1b ||
      (op >= 0x45 && op <= 0xc4) ||
      op === 0xd1
    ) {
      // no immediates
    } else
      throw new WasmFormatError(`instruction 0x${op.toString(16)} not allowed (SIMD, threads, exceptions)`);
  }
}

/** Parses what the validator needs; throws WasmFormatError on anything it cannot account for. */
export function inspect(b: Uint8Array): WasmFacts {
  const secs = sections(b);
  const facts: WasmFacts = { sections: secs, imports: [], memories: [], globals: 0, loops: 0 };
  for (const s of secs) {
    const r = new Reader(b, s.start, s.end);
    if (s.id === 2) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const module = r.name();
        const name = r.name();
        const kind = r.byte();
        facts.imports.push({ module, name, kind });
        if (kind === 0) r.u32();
        else if (kind === 1) {
          r.byte();
          limits(r);
        } else if (kind === 2) facts.memories.push(limits(r));
        else if (kind === 3) r.skip(2);
        else throw new WasmFormatError(`import kind ${kind} not allowed`);
      }
    } else if (s.id === 5) {
      const n = r.u32();
      for (let i = 0; i < n; i++) facts.memories.push(limits(r));
    } else if (s.id === 6) {
      facts.globals = r.u32();
    } else if (s.id === 10) {
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const size = r.u32();
        const end = r.pos + size;
        const body = new Reader(b, r.pos, end);
        const groups = body.u32();
        for (let g = 0; g < groups; g++) {
          body.u32();
          body.byte();
        }
        walkExpr(body, () => facts.loops++);
        r.pos = end;
      }
    }
  }
  return facts;
}

/** The exported global that holds the remaining fuel. */
export const FUEL_EXPORT = "__outpost_fuel";

/**
 * Returns the module with a fuel global (exported as FUEL_EXPORT) checked
 * and decremented at every loop head. Requires no imported globals (the
 * validator allows function imports only), so the new global's index is the
 * module's own global count.
 */
export function meter(b: Uint8Array): Uint8Array {
  const facts = inspect(b);
  if (facts.imports.some((i) => i.kind === 3)) throw new WasmFormatError("imported globals not allowed");
  const fuel = uleb(facts.globals);
  // global.get F; i32.eqz; if; unreachable; end; global.get F; i32.const 1; i32.sub; global.set F
  const guard = [0x23, ...fuel, 0x45, 0x04, 0x40, 0x00, 0x0b, 0x23, ...fuel, 0x41, 0x01, 0x6b, 0x24, ...fuel];
  const out: number[] = [...MAGIC];
  const emit = (id: number, content: number[] | Uint8Array) => {
    out.push(id, ...uleb(content.length));
    for (const x of content) out.push(x);
  };
  const newGlobal = [0x7f, 0x01, 0x41, 0x00, 0x0b];
  let sawGlobals = false;
  let sawExports = false;
  const order = (id: number) => (id === 0 ? -1 : id === 12 ? 9.5 : id);
  for (const s of facts.sections) {
    const r = new Reader(b, s.start, s.end);
    // A missing global or export section is inserted where the spec's order puts it.
    if (!sawGlobals && s.id !== 0 && order(s.id) > 6) {
      emit(6, [...uleb(1), ...newGlobal]);
      sawGlobals = true;
    }
    if (!sawExports && s.id !== 0 && order(s.id) > 7) {
      emit(7, exportEntry(facts.globals, []));
      sawExports = true;
    }
    if (s.id === 6) {
      const n = r.u32();
      emit(6, [...uleb(n + 1), ...b.subarray(r.pos, s.end), ...newGlobal]);
      sawGlobals = true;
    } else if (s.id === 7) {
      const n = r.u32();
      emit(7, exportEntry(facts.globals, [...b.subarray(r.pos, s.end)], n));
      sawExports = true;
    } else if (s.id === 10) {
      const n = r.u32();
      const content: number[] = [...uleb(n)];
      for (let i = 0; i < n; i++) {
        const size = r.u32();
        const end = r.pos + size;
        const body = new Reader(b, r.pos, end);
        const groups = body.u32();
        for (let g = 0; g < groups; g++) {
          body.u32();
          body.byte();
        }
        const cuts: number[] = [];
        walkExpr(body, (pos) => cuts.push(pos));
        const fn: number[] = [];
        let from = r.pos;
        for (const c of cuts) {
          for (let k = from; k < c; k++) fn.push(b[k]!);
          fn.push(...guard);
          from = c;
        }
        for (let k = from; k < end; k++) fn.push(b[k]!);
        content.push(...uleb(fn.length), ...fn);
        r.pos = end;
      }
      emit(10, content);
    } else emit(s.id, b.subarray(s.start, s.end));
  }
  if (!sawGlobals) emit(6, [...uleb(1), ...newGlobal]);
  if (!sawExports) emit(7, exportEntry(facts.globals, []));
  return new Uint8Array(out);
}

function exportEntry(globalIndex: number, rest: number[], count = 0): number[] {
  const name = [...new TextEncoder().encode(FUEL_EXPORT)];
  return [...uleb(count + 1), ...rest, ...uleb(name.length), ...name, 0x03, ...uleb(globalIndex)];
}
