/**
 * Directory read-ahead for on-access scanning in block mode. A program
 * that reads a directory's files one after the other (find -exec cat,
 * grep -r, tar, a backup, an indexer) holds each open until its scan is
 * done, one IPC round trip per file. After `misses` opens in one directory
 * had to wait for a scan (within `windowMs` of each other), the files that follow
 * the last one in directory order — the order such programs read in — are
 * queued for a background scan in batches, so by the time they are opened
 * their verdicts are cached and the sensor's reader thread answers at once.
 *
 * Nothing is weakened: a file read ahead is scanned and cached under the
 * same rules as one opened (key before and after, never cached clean if it
 * changed; a detection is reported and its open refused). Bounded: per
 * round `files` files and `bytes` bytes, none larger than `maxFileBytes`;
 * no round while `maxQueued` background scans wait; `maxDirs` directories
 * remembered. Only regular files are touched (lstat first; the caller opens
 * with O_NOFOLLOW | O_NONBLOCK).
 */
import { type BigIntStats, lstatSync, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export interface ReadAheadOptions {
  /** False when the file needs no scan (cached, pending, excluded). */
  wanted: (path: string, st: BigIntStats) => boolean;
  /** Opens, reads and queues a background scan of the file. */
  fetch: (path: string) => void;
  /** Background scans waiting now. */
  queued: () => number;
  files?: number;
  bytes?: number;
  maxFileBytes?: number;
  misses?: number;
  windowMs?: number;
  maxQueued?: number;
  maxDirs?: number;
}

interface DirState {
  misses: number;
  lastMiss: number;
  names?: string[];
  index?: Map<string, number>;
  listedAt: number;
  /** Entries before this index were looked at by an earlier round. */
  cursor: number;
}

export class ReadAhead {
  private readonly dirs = new Map<string, DirState>();
  readonly counters = { rounds: 0, queued: 0 };

  constructor(private readonly o: ReadAheadOptions) {}

  /** An open in `path`'s directory had to wait for a scan (a miss, or a read-ahead not done yet). */
  onReach(path: string, now = Date.now()): void {
    const dir = dirname(path);
    const windowMs = this.o.windowMs ?? 2000;
    let d = this.dirs.get(dir);
    if (!d || now - d.lastMiss > windowMs) {
      if (!d && this.dirs.size >= (this.o.maxDirs ?? 256)) this.dirs.clear();
      d = { misses: 0, lastMiss: now, listedAt: 0, cursor: 0 };
      this.dirs.set(dir, d);
    }
    d.misses++;
    d.lastMiss = now;
    if (d.misses < (this.o.misses ?? 2)) return;
    if ((this.o.queued() ?? 0) >= (this.o.maxQueued ?? 256)) return;
    const name = basename(path);
    // Listed again when old, or when it does not know this file (created since).
    if (!d.names || now - d.listedAt > windowMs || !d.index?.has(name)) {
      try {
        d.names = readdirSync(dir);
      } catch {
        return;
      }
      d.index = new Map(d.names.map((n, i) => [n, i]));
      d.listedAt = now;
      d.cursor = 0;
    }
    this.round(dir, d, (d.index?.get(name) ?? -1) + 1);
  }

  private round(dir: string, d: DirState, from: number): void {
    const names = d.names!;
    const maxFiles = this.o.files ?? 64;
    const maxBytes = this.o.bytes ?? 4 * 1024 * 1024;
    const maxFile = BigInt(this.o.maxFileBytes ?? 1024 * 1024);
    const maxQueued = this.o.maxQueued ?? 256;
    let files = 0;
    let bytes = 0;
    let i = Math.max(from, d.cursor);
    for (; i < names.length && files < maxFiles && bytes < maxBytes; i++) {
      if (this.o.queued() >= maxQueued) break;
      const p = join(dir, names[i]!);
      const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
      if (!st?.isFile() || st.size === 0n || st.size > maxFile || !this.o.wanted(p, st)) continue;
      this.o.fetch(p);
      files++;
      bytes += Number(st.size);
    }
    d.cursor = i;
    if (files > 0) {
      this.counters.rounds++;
      this.counters.queued += files;
    }
  }
}
