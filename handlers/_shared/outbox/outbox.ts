/**
 * A durable, numbered outbox of JSON lines, shared by the query host's
 * result lines and the supervisor's telemetry reports. Every line gets a
 * sequence number within a generation (a random id made when the outbox is
 * created); lines are appended and fsynced before the run that produced them
 * is considered done, and stay until the supervisor acknowledges them — so
 * results survive a crash of either process, and a line is identified
 * everywhere downstream by (generation, seq), which is what makes
 * delivery exactly-once. Segments of ~4 MiB are deleted once acknowledged;
 * above the size cap the oldest unacknowledged segment is dropped and
 * counted (an agent that could not deliver for days must not fill the disk).
 *
 * A pull reads only what was appended since the last one (issue 21, idle
 * CPU). The segment being appended to holds every acknowledged line until
 * it reaches its size — ~20 hours of the demo's two queries every 10 s — and
 * reading it whole at each pull made the query host's cost per run grow with
 * the agent's uptime, from nothing to a 4 MiB read, decode and split every
 * 10 s. The lines read are kept from the first unacknowledged one on, so
 * the memory held is what is pending, not what the segment has seen.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { atomicWriteJson } from "../../../core/fsutil.ts";

export interface OutboxOptions {
  /** Above this the oldest segment is dropped (default 256 MiB). */
  maxBytes?: number;
  /** Segment size before a new one is started (default 4 MiB). */
  segmentBytes?: number;
  now?: () => number;
}

interface Segment {
  start: number;
  count: number;
  bytes: number;
  path: string;
}

interface Meta {
  generation: string;
  acked: number;
  dropped: number;
}

export interface PulledLines {
  generation: string;
  /** Sequence number of lines[0]; line i has seq first + i. */
  first: number;
  lines: string[];
  /** Unacknowledged lines, including these. */
  pending: number;
}

const SEGMENT = /^seg-(\d{16})\.jsonl$/;
/** Bytes a recovery reads at a time. */
const RECOVERY_CHUNK = 64 * 1024;

export class Outbox {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly now: () => number;
  private meta: Meta;
  private segments: Segment[] = [];
  private nextSeq: number;
  /** When the oldest unacknowledged line was appended (0: unknown, treat as old). */
  private pendingSince = 0;
  /**
   * Lines of one segment read so far: `lines[0]` has sequence `first`, and
   * the file was read up to byte `end`. Lines before the pull's first are
   * dropped as the pull passes them.
   */
  private cache?: { path: string; first: number; end: number; lines: string[] };
  /** Bytes read from segments by pulls and recovery since start (tests; the cost of a pull). */
  private bytesRead = 0;

  constructor(dir: string, opts: OutboxOptions = {}) {
    this.dir = dir;
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
    this.segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
    this.now = opts.now ?? Date.now;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const metaPath = join(dir, "meta.json");
    this.meta = existsSync(metaPath)
      ? (JSON.parse(readFileSync(metaPath, "utf8")) as Meta)
      : { generation: crypto.randomUUID(), acked: 0, dropped: 0 };
    if (!existsSync(metaPath)) this.saveMeta();
    for (const name of readdirSync(dir).sort()) {
      const m = SEGMENT.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      const start = Number(m[1]);
      this.segments.push({ start, ...this.recoverSegment(path, start), path });
    }
    const last = this.segments.at(-1);
    this.nextSeq = last ? last.start + last.count : this.meta.acked + 1;
    if (this.nextSeq <= this.meta.acked) this.nextSeq = this.meta.acked + 1;
  }

  /**
   * Counts complete lines and cuts a torn last line (a crash mid-append).
   * Read in chunks, so a 4 MiB segment costs a start no 4 MiB buffer; where
   * the first unacknowledged line starts is kept, so the first pull after a
   * restart reads from there.
   */
  private recoverSegment(path: string, start: number): { count: number; bytes: number } {
    // Lines of this segment already acknowledged: the next one starts where the `skip`-th ends.
    const skip = this.meta.acked - start + 1;
    let count = 0;
    let end = 0;
    let pos = 0;
    const fd = openSync(path, "r");
    try {
      const chunk = Buffer.allocUnsafe(RECOVERY_CHUNK);
      for (;;) {
        const n = readSync(fd, chunk, 0, chunk.length, pos);
        if (n === 0) break;
        this.bytesRead += n;
        for (let i = chunk.indexOf(0x0a); i !== -1 && i < n; i = chunk.indexOf(0x0a, i + 1)) {
          count++;
          end = pos + i + 1;
          if (count === skip) this.cache = { path, first: start + count, end, lines: [] };
        }
        pos += n;
      }
    } finally {
      closeSync(fd);
    }
    // Opened for writing only when there is a torn line to cut, as before.
    if (end !== pos) {
      const w = openSync(path, "r+");
      try {
        ftruncateSync(w, end);
        fsyncSync(w);
      } finally {
        closeSync(w);
      }
    }
    return { count, bytes: end };
  }

  private saveMeta(): void {
    atomicWriteJson(join(this.dir, "meta.json"), this.meta, 0o600);
  }

  get generation(): string {
    return this.meta.generation;
  }

  get pending(): number {
    return this.nextSeq - 1 - this.meta.acked;
  }

  get bytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0);
  }

  /** Milliseconds since the oldest pending line was appended (Infinity after a restart). */
  oldestPendingAgeMs(): number {
    if (this.pending === 0) return 0;
    return this.pendingSince === 0 ? Number.POSITIVE_INFINITY : this.now() - this.pendingSince;
  }

  stats(): {
    generation: string;
    pending: number;
    bytes: number;
    acked: number;
    dropped: number;
    nextSeq: number;
  } {
    return {
      generation: this.meta.generation,
      pending: this.pending,
      bytes: this.bytes,
      acked: this.meta.acked,
      dropped: this.meta.dropped,
      nextSeq: this.nextSeq,
    };
  }

  /** Appends lines durably (fsync) and returns the sequence number of the first. */
  append(lines: readonly string[]): number {
    const first = this.nextSeq;
    if (lines.length === 0) return first;
    for (const l of lines) if (l.includes("\n")) throw new Error("outbox lines must not contain newlines");
    if (this.pending === 0) this.pendingSince = this.now();
    let seg = this.segments.at(-1);
    if (!seg || seg.bytes >= this.segmentBytes) {
      seg = {
        start: this.nextSeq,
        count: 0,
        bytes: 0,
        path: join(this.dir, `seg-${String(this.nextSeq).padStart(16, "0")}.jsonl`),
      };
      this.segments.push(seg);
    }
    const data = Buffer.from(`${lines.join("\n")}\n`);
    const fd = openSync(seg.path, "a", 0o600);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    seg.count += lines.length;
    seg.bytes += data.length;
    this.nextSeq += lines.length;
    this.enforceCap();
    return first;
  }

  private enforceCap(): void {
    let changed = false;
    while (this.bytes > this.maxBytes && this.segments.length > 1) {
      const oldest = this.segments.shift()!;
      const end = oldest.start + oldest.count - 1;
      if (end > this.meta.acked) {
        this.meta.dropped += end - Math.max(this.meta.acked, oldest.start - 1);
        this.meta.acked = end;
      }
      rmSync(oldest.path, { force: true });
      changed = true;
    }
    if (changed) this.saveMeta();
  }

  /**
   * The lines of `seg` from sequence `from` on (`lines[0]` is `from`, or the
   * segment's first line when `from` is before it). Reads only the bytes
   * appended since the segment was last read.
   */
  private linesOf(seg: Segment, from: number): { first: number; lines: string[] } {
    let c = this.cache;
    if (!c || c.path !== seg.path || c.first > Math.max(from, seg.start)) {
      c = { path: seg.path, first: seg.start, end: 0, lines: [] };
      this.cache = c;
    }
    if (c.end < seg.bytes) {
      const buf = Buffer.allocUnsafe(seg.bytes - c.end);
      const fd = openSync(seg.path, "r");
      try {
        let off = 0;
        while (off < buf.length) {
          const n = readSync(fd, buf, off, buf.length - off, c.end + off);
          if (n === 0) break;
          off += n;
        }
        this.bytesRead += off;
        // Appends are whole lines, so what was read ends at a line boundary (a shorter read: at the last one).
        const whole = off > 0 ? buf.lastIndexOf(0x0a, off - 1) + 1 : 0;
        const more = buf.toString("utf8", 0, whole).split("\n");
        more.pop();
        for (const l of more) c.lines.push(l);
        c.end += whole;
      } finally {
        closeSync(fd);
      }
    }
    const passed = Math.min(from - c.first, c.lines.length);
    if (passed > 0) {
      c.lines.splice(0, passed);
      c.first += passed;
    }
    return { first: c.first, lines: c.lines };
  }

  /** Bytes read from segment files since this outbox was opened (recovery and pulls). */
  get readBytes(): number {
    return this.bytesRead;
  }

  /** Up to `max` lines (and about `maxBytes`) after the last acknowledged one. */
  pull(max: number, maxBytes = 8 * 1024 * 1024): PulledLines {
    const first = this.meta.acked + 1;
    const lines: string[] = [];
    let bytes = 0;
    let seq = first;
    for (const seg of this.segments) {
      if (seg.start + seg.count <= seq) continue;
      const { first: base, lines: all } = this.linesOf(seg, seq);
      for (let i = seq - base; i < all.length; i++) {
        const l = all[i]!;
        if (lines.length >= max || (lines.length > 0 && bytes + l.length > maxBytes)) {
          return { generation: this.meta.generation, first, lines, pending: this.pending };
        }
        lines.push(l);
        bytes += l.length + 1;
        seq++;
      }
    }
    return { generation: this.meta.generation, first, lines, pending: this.pending };
  }

  /** Acknowledges everything up to `upTo` of `generation`; returns false for another generation. */
  ack(generation: string, upTo: number): boolean {
    if (generation !== this.meta.generation) return false;
    const target = Math.min(upTo, this.nextSeq - 1);
    if (target <= this.meta.acked) return true;
    this.meta.acked = target;
    this.saveMeta();
    while (this.segments.length > 0) {
      const s = this.segments[0]!;
      if (s.start + s.count - 1 > target) break;
      // Keep the segment being appended to, so appends never race a deletion.
      if (this.segments.length === 1) break;
      this.segments.shift();
      rmSync(s.path, { force: true });
    }
    this.pendingSince = this.pending > 0 ? this.now() : 0;
    return true;
  }

  /** Disk usage as seen by the file system (for tests of the cap). */
  diskBytes(): number {
    return this.segments.reduce((n, s) => n + (existsSync(s.path) ? statSync(s.path).size : 0), 0);
  }
}
