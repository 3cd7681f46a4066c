/**
 * Packs a batch of events into one byte string for the Lua side
 * (runtime.lua `dispatch`), because every JS→Lua call costs far more than
 * decoding in Lua: each distinct event shape (field names and value kinds)
 * gets a schema id and a generated decoder that unpacks all its fields with
 * one `string.unpack`.
 *
 *   batch  := record*
 *   record := schemaId:u16 fields deliver
 *   fields := per schema field, in order: s4 (u32 length + UTF-8) | j (i64) | n (f64) | B (u8 boolean)
 *   deliver:= 0xFFFF (every subscription of the event's type) | count:u16 subId:u16*count
 */
export type FieldValue = string | number | boolean;
export type FlatEvent = Record<string, FieldValue | null | undefined>;

export interface SchemaDef {
  id: number;
  fmt: string;
  names: string[];
  booleans: boolean[];
}

interface Schema extends SchemaDef {
  kinds: string;
}

export const ALL_SUBSCRIPTIONS = 0xffff;
/** Distinct event shapes per engine; events of a new shape beyond this are dropped (and counted). */
export const MAX_SCHEMAS = 4096;

const encoder = new TextEncoder();

export class BatchEncoder {
  private readonly schemas = new Map<string, Schema>();
  private buf = new Uint8Array(64 * 1024);
  private view = new DataView(this.buf.buffer);
  private off = 0;
  private pending: SchemaDef[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  get schemaCount(): number {
    return this.schemas.size;
  }

  /**
   * The schema the last event of each type had. Streams repeat a handful of
   * shapes, so checking an event against it (no strings built) finds the
   * schema for almost every event; building the shape key is the fallback.
   */
  private readonly lastByType = new Map<unknown, Schema>();

  private matches(event: FlatEvent, schema: Schema): boolean {
    const { names, kinds } = schema;
    let i = 0;
    for (const name in event) {
      const v = event[name];
      if (v === null || v === undefined) continue;
      if (names[i] !== name) return false;
      const k = kinds.charCodeAt(i);
      const ok =
        typeof v === "string"
          ? k === 115 // s
          : typeof v === "boolean"
            ? k === 98 // b
            : Number.isSafeInteger(v)
              ? k === 105 // i
              : k === 110; // n
      if (!ok) return false;
      i++;
    }
    return i === names.length;
  }

  /** Appends one event; false if its shape is new and the schema table is full. */
  add(event: FlatEvent, subs: number[] | null): boolean {
    const last = this.lastByType.get(event.type);
    const schema = last && this.matches(event, last) ? last : this.schemaOf(event);
    if (!schema) return false;
    this.lastByType.set(event.type, schema);
    this.write(event, schema, subs);
    return true;
  }

  private schemaOf(event: FlatEvent): Schema | null {
    const names: string[] = [];
    let kinds = "";
    for (const name in event) {
      const v = event[name];
      if (v === null || v === undefined) continue;
      names.push(name);
      kinds +=
        typeof v === "string" ? "s" : typeof v === "boolean" ? "b" : Number.isSafeInteger(v) ? "i" : "n";
    }
    const key = `${names.join("\u0001")}\u0002${kinds}`;
    let schema = this.schemas.get(key);
    if (!schema) {
      if (this.schemas.size >= MAX_SCHEMAS) return null;
      const fmt = `<${[...kinds].map((k) => (k === "s" ? "s4" : k === "b" ? "B" : k === "i" ? "j" : "n")).join("")}`;
      schema = { id: this.schemas.size + 1, fmt, names, booleans: [...kinds].map((k) => k === "b"), kinds };
      this.schemas.set(key, schema);
      this.pending.push({ id: schema.id, fmt: schema.fmt, names: schema.names, booleans: schema.booleans });
    }
    return schema;
  }

  private write(event: FlatEvent, schema: Schema, subs: number[] | null): void {
    const { names } = schema;
    this.ensure(2);
    this.view.setUint16(this.off, schema.id, true);
    this.off += 2;
    for (let i = 0; i < names.length; i++) {
      const v = event[names[i]!] as FieldValue;
      switch (schema.kinds[i]) {
        case "s": {
          const s = v as string;
          this.ensure(4 + s.length * 3);
          // ASCII (most paths and command lines) byte by byte; encodeInto for the rest.
          const buf = this.buf;
          const start = this.off + 4;
          let j = 0;
          const n = s.length;
          for (; j < n; j++) {
            const c = s.charCodeAt(j);
            if (c > 0x7f) break;
            buf[start + j] = c;
          }
          let written = j;
          if (j < n) written += encoder.encodeInto(s.slice(j), buf.subarray(start + j)).written;
          this.view.setUint32(this.off, written, true);
          this.off += 4 + written;
          break;
        }
        case "i": {
          const n = v as number;
          const hi = Math.floor(n / 4294967296);
          this.ensure(8);
          this.view.setUint32(this.off, n - hi * 4294967296, true);
          this.view.setInt32(this.off + 4, hi, true);
          this.off += 8;
          break;
        }
        case "n":
          this.ensure(8);
          this.view.setFloat64(this.off, v as number, true);
          this.off += 8;
          break;
        default:
          this.ensure(1);
          this.buf[this.off++] = v ? 1 : 0;
      }
    }
    const n = subs ? subs.length : 0;
    this.ensure(2 + 2 * n);
    this.view.setUint16(this.off, subs ? n : ALL_SUBSCRIPTIONS, true);
    this.off += 2;
    if (subs) {
      for (const id of subs) {
        this.view.setUint16(this.off, id, true);
        this.off += 2;
      }
    }
    this.count++;
  }

  /** The packed batch and the schemas Lua has not seen yet; resets for the next batch. */
  take(): { bytes: Uint8Array; newSchemas: SchemaDef[] } {
    const bytes = this.buf.slice(0, this.off);
    const newSchemas = this.pending;
    this.pending = [];
    this.off = 0;
    this.count = 0;
    return { bytes, newSchemas };
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.off + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.off));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}
