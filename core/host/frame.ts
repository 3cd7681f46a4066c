/**
 * The wire format between the supervisor and its host processes: length-
 * prefixed frames carrying one JSON message plus binary attachments, so a
 * 1 MiB scan buffer travels as bytes, not as base64 inside JSON.
 *
 *   0   u16  magic 0x4F50 ("OP")
 *   2   u16  version (1)
 *   4   u32  JSON length J
 *   8   u32  attachment count N
 *   12  N × u32 attachment lengths
 *   …   J bytes of UTF-8 JSON; each Uint8Array in the message is replaced by {"$att": i}
 *   …   the attachments, concatenated
 *
 * A Uint8Array that lies in the host's shared transfer region
 * (shared-transfer.ts) travels by reference instead: {"$shm": [offset, length]},
 * resolved by the receiver against its read-only mapping.
 *
 * All integers are big-endian. The reader never trusts a length: a frame
 * over the limit is skipped as its bytes arrive (never buffered) and
 * reported, and a bad magic means the stream lost its framing, which is
 * fatal for that connection — the supervisor kills the child, it does not
 * guess where the next frame starts.
 */
import { HandlerError } from "../errors.ts";
import { SHM_KEY, sharedView } from "./shared-transfer.ts";

export const FRAME_MAGIC = 0x4f50;
export const FRAME_VERSION = 1;
const PREFIX = 12;
const MAX_ATTACHMENTS = 65_536;
const MAX_DEPTH = 256;
/** The placeholder key for attachments; user data may not use it. */
export const ATT_KEY = "$att";

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function unserializable(path: string, what: string): HandlerError {
  return new HandlerError(
    "HND_IPC_UNSERIALIZABLE",
    `${path || "(value)"}: ${what} cannot cross the host boundary (JSON values and Uint8Array only)`,
  );
}

function toWire(
  value: unknown,
  atts: Uint8Array[],
  path: string,
  depth: number,
  shared?: ArrayBuffer,
): unknown {
  if (depth > MAX_DEPTH) throw unserializable(path, `nesting deeper than ${MAX_DEPTH}`);
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw unserializable(path, String(value));
    return value;
  }
  if (value === undefined) return undefined;
  if (value instanceof Uint8Array) {
    if (shared !== undefined && value.buffer === shared)
      return { [SHM_KEY]: [value.byteOffset, value.length] };
    atts.push(value);
    return { [ATT_KEY]: atts.length - 1 };
  }
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = toWire(value[i], atts, `${path}[${i}]`, depth + 1, shared);
      out[i] = v === undefined ? null : v;
    }
    return out;
  }
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw unserializable(path, (value as object).constructor?.name ?? "a class instance");
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === ATT_KEY || k === SHM_KEY) throw unserializable(`${path}.${k}`, `the key ${k} (reserved)`);
      const w = toWire(v, atts, path ? `${path}.${k}` : k, depth + 1, shared);
      if (w !== undefined) out[k] = w;
    }
    return out;
  }
  throw unserializable(path, typeof value);
}

/** Throws HND_IPC_UNSERIALIZABLE unless `value` could cross the host boundary unchanged. */
export function assertTransferable(value: unknown): void {
  toWire(value, [], "", 0);
}

/** `shared`: the receiver's transfer region; views of it go by reference, not as attachments. */
export function encodeFrame(
  message: unknown,
  maxBytes = DEFAULT_MAX_MESSAGE_BYTES,
  shared?: ArrayBuffer,
): Uint8Array {
  const atts: Uint8Array[] = [];
  const json = new TextEncoder().encode(JSON.stringify(toWire(message, atts, "", 0, shared)));
  if (atts.length > MAX_ATTACHMENTS) {
    throw new HandlerError(
      "HND_IPC_TOO_LARGE",
      `message has ${atts.length} attachments (max ${MAX_ATTACHMENTS})`,
    );
  }
  let total = PREFIX + 4 * atts.length + json.length;
  for (const a of atts) total += a.length;
  if (total > maxBytes) {
    throw new HandlerError(
      "HND_IPC_TOO_LARGE",
      `message of ${total} bytes exceeds the ${maxBytes}-byte limit`,
      {
        details: { bytes: total, limit: maxBytes },
      },
    );
  }
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, FRAME_MAGIC);
  dv.setUint16(2, FRAME_VERSION);
  dv.setUint32(4, json.length);
  dv.setUint32(8, atts.length);
  let off = PREFIX;
  for (const a of atts) {
    dv.setUint32(off, a.length);
    off += 4;
  }
  out.set(json, off);
  off += json.length;
  for (const a of atts) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

/** Replaces {"$att": i} placeholders with the attachments, in place; false when one is invalid. */
function fromWire(value: unknown, atts: Uint8Array[], used: Set<number>, shared?: ArrayBuffer): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = fromWire(value[i], atts, used, shared);
    return value;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1 && keys[0] === SHM_KEY) {
    const view = sharedView(shared, obj[SHM_KEY]);
    if (!view) {
      throw new FrameError(
        "bad-attachment",
        shared
          ? `shared reference ${JSON.stringify(obj[SHM_KEY])} is outside the transfer region`
          : "shared reference without a transfer region",
      );
    }
    return view;
  }
  if (keys.length === 1 && keys[0] === ATT_KEY) {
    const i = obj[ATT_KEY];
    if (typeof i !== "number" || !Number.isInteger(i) || i < 0 || i >= atts.length || used.has(i)) {
      throw new FrameError("bad-attachment", `attachment reference ${JSON.stringify(i)} is invalid`);
    }
    used.add(i);
    return atts[i];
  }
  for (const k of keys) obj[k] = fromWire(obj[k], atts, used, shared);
  return obj;
}

export class FrameError extends Error {
  constructor(
    readonly kind: "bad-magic" | "oversize" | "bad-json" | "bad-attachment" | "too-many-attachments",
    message: string,
  ) {
    super(message);
  }
  get fatal(): boolean {
    return this.kind === "bad-magic" || this.kind === "too-many-attachments";
  }
}

export interface FrameReaderOptions {
  maxBytes: number;
  /** The transfer region mapped from the peer (read-only); {"$shm": …} references resolve into it. */
  shared?: ArrayBuffer;
  onMessage(message: unknown, bytes: number): void;
  /** Called for every rejected frame; after a fatal one the reader ignores all further input. */
  onError(error: FrameError): void;
}

/**
 * Incremental frame decoder. `push` never throws: every problem goes to
 * `onError`, and a consumer exception in `onMessage` is reported there too.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private skipping = 0;
  private dead = false;

  constructor(private readonly opts: FrameReaderOptions) {}

  get broken(): boolean {
    return this.dead;
  }

  push(chunk: Uint8Array): void {
    if (this.dead || chunk.length === 0) return;
    if (this.skipping > 0) {
      const drop = Math.min(this.skipping, chunk.length);
      this.skipping -= drop;
      chunk = chunk.subarray(drop);
      if (chunk.length === 0) return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.dead && this.skipping === 0 && this.buffered >= PREFIX) {
      const head = this.peek(PREFIX);
      const dv = new DataView(head.buffer, head.byteOffset, PREFIX);
      if (dv.getUint16(0) !== FRAME_MAGIC || dv.getUint16(2) !== FRAME_VERSION) {
        this.fail(
          new FrameError(
            "bad-magic",
            `frame starts with 0x${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join("")}, not an Outpost frame (stream desynchronised)`,
          ),
        );
        return;
      }
      const jsonLength = dv.getUint32(4);
      const count = dv.getUint32(8);
      if (count > MAX_ATTACHMENTS) {
        this.fail(new FrameError("too-many-attachments", `frame announces ${count} attachments`));
        return;
      }
      const tableEnd = PREFIX + 4 * count;
      if (tableEnd > this.opts.maxBytes) {
        this.fail(
          new FrameError("too-many-attachments", `attachment table of ${count} entries exceeds the limit`),
        );
        return;
      }
      if (this.buffered < tableEnd) return;
      const table = this.peek(tableEnd);
      const tdv = new DataView(table.buffer, table.byteOffset, tableEnd);
      const lengths: number[] = [];
      let total = tableEnd + jsonLength;
      for (let i = 0; i < count; i++) {
        const len = tdv.getUint32(PREFIX + 4 * i);
        lengths.push(len);
        total += len;
      }
      if (total > this.opts.maxBytes) {
        this.report(
          new FrameError(
            "oversize",
            `frame of ${total} bytes exceeds the ${this.opts.maxBytes}-byte limit; skipped`,
          ),
        );
        this.skipping = total;
        this.discardBuffered();
        continue;
      }
      if (this.buffered < total) return;
      const frame = this.take(total);
      this.decode(frame, tableEnd, jsonLength, lengths);
    }
  }

  private decode(frame: Uint8Array, tableEnd: number, jsonLength: number, lengths: number[]): void {
    let message: unknown;
    try {
      const text = new TextDecoder("utf-8", { fatal: true }).decode(
        frame.subarray(tableEnd, tableEnd + jsonLength),
      );
      message = JSON.parse(text);
    } catch (e) {
      this.report(new FrameError("bad-json", `frame JSON is invalid: ${(e as Error).message}`));
      return;
    }
    const atts: Uint8Array[] = [];
    let off = tableEnd + jsonLength;
    for (const len of lengths) {
      atts.push(frame.subarray(off, off + len));
      off += len;
    }
    try {
      message = fromWire(message, atts, new Set(), this.opts.shared);
    } catch (e) {
      this.report(e instanceof FrameError ? e : new FrameError("bad-attachment", String(e)));
      return;
    }
    try {
      this.opts.onMessage(message, frame.length);
    } catch (e) {
      this.report(new FrameError("bad-json", `message handler failed: ${(e as Error).message}`));
    }
  }

  private fail(e: FrameError): void {
    this.dead = true;
    this.chunks = [];
    this.buffered = 0;
    this.report(e);
  }

  private report(e: FrameError): void {
    try {
      this.opts.onError(e);
    } catch {
      // The error path must not throw back into the stream reader.
    }
  }

  /** Drops what is buffered of the frame being skipped, keeping any bytes beyond it. */
  private discardBuffered(): void {
    const drop = Math.min(this.skipping, this.buffered);
    this.take(drop);
    this.skipping -= drop;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let off = 0;
    for (const c of this.chunks) {
      const part = c.subarray(0, Math.min(c.length, n - off));
      out.set(part, off);
      off += part.length;
      if (off === n) break;
    }
    return out;
  }

  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.chunks[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      // A fresh copy: attachments are views into it and must not alias the stream's buffers.
      out = first.slice(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const part = Math.min(c.length, n - off);
        out.set(c.subarray(0, part), off);
        off += part;
        if (part === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(part);
      }
    }
    this.buffered -= n;
    return out;
  }
}
