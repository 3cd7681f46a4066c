/**
 * Follows one log file by polling, the way `tail -F` does, and survives
 * everything a log does under it:
 *  - rotation (rename + new file): the rest of the old file is read through
 *    the open descriptor, then the new file from its start;
 *  - truncation (copytruncate, `: > file`): the size drops below our offset,
 *    so reading restarts at 0;
 *  - vanishing (deleted, directory gone) and reappearing: nothing is read
 *    while it is absent; no error escapes.
 * Only complete lines are returned; an over-long line is cut at maxLine.
 * Each poll reads at most maxBytes, so a huge backlog is spread over polls.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";

export interface TailOptions {
  /** On first open, start this many bytes before the end (0: only new lines). */
  backlogBytes?: number;
  maxBytes?: number;
  maxLine?: number;
}

export class FileTailer {
  private fd: number | null = null;
  private ino = -1;
  private dev = -1;
  private offset = 0;
  private partial = "";
  private opened = false;
  readonly counters = { lines: 0, rotations: 0, truncations: 0, vanished: 0, errors: 0 };

  constructor(
    readonly path: string,
    private readonly opts: TailOptions = {},
  ) {}

  private get maxBytes() {
    return this.opts.maxBytes ?? 4 * 1024 * 1024;
  }

  private openCurrent(fromStart: boolean): boolean {
    try {
      const fd = openSync(this.path, "r");
      const st = fstatSync(fd);
      this.fd = fd;
      this.ino = st.ino;
      this.dev = st.dev;
      const backlog = this.opts.backlogBytes ?? 1024 * 1024;
      this.offset = fromStart ? 0 : Math.max(0, st.size - backlog);
      this.partial = "";
      // Starting mid-file: drop the first (probably partial) line.
      if (this.offset > 0) this.partial = "\u0000skip";
      return true;
    } catch {
      return false;
    }
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // gone already
    }
    this.fd = null;
  }

  /** New complete lines since the last poll. Never throws. */
  poll(): string[] {
    try {
      return this.pollInner();
    } catch {
      this.counters.errors++;
      this.closeFd();
      return [];
    }
  }

  private pollInner(): string[] {
    if (this.fd === null) {
      // A file that appears after we started (or reappears) is read from its beginning.
      if (!this.openCurrent(this.opened)) return [];
      this.opened = true;
    }
    const out = this.drain();
    // Has the path moved on to another file (rotation) or gone?
    let st: { ino: number; dev: number; size: number } | null = null;
    try {
      st = statSync(this.path);
    } catch {
      st = null;
    }
    if (!st) {
      this.counters.vanished++;
      this.closeFd();
      this.flushPartial(out);
    } else if (st.ino !== this.ino || st.dev !== this.dev) {
      this.counters.rotations++;
      this.closeFd();
      this.flushPartial(out);
      if (this.openCurrent(true)) out.push(...this.drain());
    }
    this.counters.lines += out.length;
    return out;
  }

  private flushPartial(out: string[]): void {
    if (this.partial && !this.partial.startsWith("\u0000")) out.push(this.cap(this.partial));
    this.partial = "";
  }

  private cap(line: string): string {
    const max = this.opts.maxLine ?? 16 * 1024;
    return line.length > max ? line.slice(0, max) : line;
  }

  private drain(): string[] {
    const fd = this.fd;
    if (fd === null) return [];
    const size = fstatSync(fd).size;
    if (size < this.offset) {
      this.counters.truncations++;
      this.offset = 0;
      this.partial = "";
    }
    const want = Math.min(size - this.offset, this.maxBytes);
    if (want <= 0) return [];
    const buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const n = readSync(fd, buf, got, want - got, this.offset + got);
      if (n === 0) break;
      got += n;
    }
    this.offset += got;
    const text = this.partial + buf.subarray(0, got).toString("utf8");
    const parts = text.split("\n");
    this.partial = parts.pop() ?? "";
    const out: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === 0 && p.startsWith("\u0000skip")) continue;
      out.push(this.cap(p));
    }
    if (this.partial.length > 1024 * 1024) this.partial = this.partial.slice(0, 1024 * 1024);
    return out;
  }

  close(): void {
    this.closeFd();
  }
}
