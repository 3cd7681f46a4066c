/**
 * Scan sessions: how an object larger than one IPC message reaches the
 * scanner. The requester calls begin, then chunk (≤ MAX_CHUNK_BYTES each, in
 * order), then end, which scans the whole object. Up to `memoryBytes` the
 * chunks stay in memory; past that everything is appended to a spill file
 * in the scanner's work directory, which is mapped for the scan and removed
 * afterwards — memory stays bounded by the chunk size, not the object.
 * Sessions left idle are swept, so a requester that dies leaks nothing. The
 * sweep runs only while a session is open: an idle scanner has no timer of
 * its own (issue 21: it woke every minute to find nothing).
 */
import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ranCode } from "../../core/code-release.ts";
import { HandlerError } from "../../core/errors.ts";
import type { ScanLimits } from "./engine.ts";

export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
export const MAX_SESSIONS = 32;
export const MAX_OBJECT_BYTES = 64 * 1024 * 1024 * 1024;
export const SESSION_IDLE_MS = 5 * 60 * 1000;
/** How often open sessions are checked for idleness. */
export const SWEEP_INTERVAL_MS = 60 * 1000;

interface Session {
  id: string;
  name: string;
  limits: Partial<ScanLimits>;
  parts: Uint8Array[];
  size: number;
  spill?: { path: string; fd: number };
  lastActivity: number;
}

export class SessionTable {
  private readonly sessions = new Map<string, Session>();
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly workDir: string,
    private readonly memoryBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get open(): number {
    return this.sessions.size;
  }

  /** The sweep timer is armed (while any session is open). */
  get sweeping(): boolean {
    return this.sweeper !== undefined;
  }

  /** Arms the sweep when the first session opens, disarms it when the last one goes. */
  private sweepWhileOpen(): void {
    if (this.sessions.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    } else if (!this.sweeper) {
      this.sweeper = setInterval(() => {
        this.sweep();
        // The sweep's code pages go back once the scanner is quiet again (core/code-release.ts).
        ranCode();
      }, SWEEP_INTERVAL_MS);
      this.sweeper.unref?.();
    }
  }

  begin(name: string, limits: Partial<ScanLimits>): string {
    this.sweep();
    if (this.sessions.size >= MAX_SESSIONS) {
      throw new HandlerError("HND_DATASETA_BUSY", `DatasetA: ${MAX_SESSIONS} scan sessions already open`);
    }
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("hex");
    this.sessions.set(id, { id, name, limits, parts: [], size: 0, lastActivity: this.now() });
    this.sweepWhileOpen();
    return id;
  }

  chunk(id: string, bytes: Uint8Array): number {
    const s = this.get(id);
    if (bytes.length > MAX_CHUNK_BYTES) {
      throw new HandlerError(
        "HND_DATASETA_BAD_ARGS",
        `DatasetA chunk: ${bytes.length} bytes > ${MAX_CHUNK_BYTES}`,
      );
    }
    if (s.size + bytes.length > MAX_OBJECT_BYTES) {
      this.abort(id);
      throw new HandlerError("HND_DATASETA_TOO_LARGE", `DatasetA: object exceeds ${MAX_OBJECT_BYTES} bytes`);
    }
    s.lastActivity = this.now();
    if (!s.spill && s.size + bytes.length > this.memoryBytes) {
      const path = join(this.workDir, `session-${s.id}.spill`);
      const fd = openSync(path, "wx", 0o600);
      s.spill = { path, fd };
      for (const p of s.parts) writeSync(fd, p);
      s.parts = [];
    }
    if (s.spill) writeSync(s.spill.fd, bytes);
    // The requester may reuse its buffer; keep a copy.
    else s.parts.push(bytes.slice());
    s.size += bytes.length;
    return s.size;
  }

  /** Closes the session and hands back its bytes (mapped when spilled) with the scan options. */
  finish(id: string): { name: string; limits: Partial<ScanLimits>; data: Uint8Array } {
    const s = this.get(id);
    this.sessions.delete(id);
    this.sweepWhileOpen();
    if (s.spill) {
      closeSync(s.spill.fd);
      try {
        const data = s.size === 0 ? new Uint8Array(0) : Bun.mmap(s.spill.path, { shared: false });
        return { name: s.name, limits: s.limits, data };
      } finally {
        unlinkSync(s.spill.path);
      }
    }
    const data = new Uint8Array(s.size);
    let o = 0;
    for (const p of s.parts) {
      data.set(p, o);
      o += p.length;
    }
    return { name: s.name, limits: s.limits, data };
  }

  abort(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    this.sweepWhileOpen();
    if (s.spill) {
      closeSync(s.spill.fd);
      try {
        unlinkSync(s.spill.path);
      } catch {
        // Already gone: nothing to clean.
      }
    }
  }

  sweep(): number {
    const cutoff = this.now() - SESSION_IDLE_MS;
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (s.lastActivity < cutoff) {
        this.abort(s.id);
        n++;
      }
    }
    return n;
  }

  closeAll(): void {
    for (const id of [...this.sessions.keys()]) this.abort(id);
  }

  private get(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw new HandlerError("HND_DATASETA_NO_SESSION", `DatasetA: no open scan session ${id}`);
    return s;
  }
}
