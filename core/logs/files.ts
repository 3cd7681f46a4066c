/**
 * The agent's JSON-lines log, also written to rotating files
 * (DIR/agent.log, rotated to agent.log.1 … agent.log.N by size), so that
 * self-help rules (ESH) and administrators have something to read after
 * the fact — stderr is gone once the service manager rotates it away.
 *
 * Writes are synchronous appends to an open descriptor (one write(2) per
 * record, so a reader never sees half a line from us); no fsync — a log is
 * diagnostics, not state, and the agent must not stall on a slow disk. A
 * write that fails (disk full, directory removed) is counted and the file
 * reopened on the next record; logging never throws into its caller.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { Logger, LogRecord } from "../log.ts";
import type { LogFilesConfig } from "./config.ts";

export const AGENT_LOG = "agent.log";

export interface RotatingLogOptions {
  dir: string;
  maxBytes: number;
  maxFiles: number;
  name?: string;
  /** Clock for the once-a-second "still our file?" check (tests). */
  now?: () => number;
}

export class RotatingLogFile {
  readonly path: string;
  private fd: number | null = null;
  private ino = -1;
  private checkedAt = 0;
  private size = 0;
  failures = 0;
  rotations = 0;

  constructor(private readonly opts: RotatingLogOptions) {
    this.path = join(opts.dir, opts.name ?? AGENT_LOG);
  }

  private open(): number {
    if (this.fd !== null) return this.fd;
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o750 });
    const fd = openSync(this.path, "a", 0o640);
    const st = fstatSync(fd);
    this.size = st.size;
    this.ino = st.ino;
    this.fd = fd;
    return fd;
  }

  /**
   * Whether our descriptor still is the file at `path`: someone else may have
   * rotated it (logrotate without copytruncate) or removed the directory.
   * Checked at most once a second, so a busy log costs one stat per second.
   */
  private stillCurrent(): boolean {
    const now = (this.opts.now ?? Date.now)();
    if (now - this.checkedAt < 1000) return true;
    this.checkedAt = now;
    try {
      return statSync(this.path).ino === this.ino;
    } catch {
      return false;
    }
  }

  write(line: string): void {
    const data = Buffer.from(line.endsWith("\n") ? line : `${line}\n`);
    try {
      if (this.fd !== null && !this.stillCurrent()) this.close();
      let fd = this.open();
      if (this.size > 0 && this.size + data.length > this.opts.maxBytes) {
        this.rotate();
        fd = this.open();
      }
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      this.size += data.length;
    } catch {
      // Logging must never fail the caller; reopen next time (the directory may have been recreated).
      this.failures++;
      this.close();
    }
  }

  private rotate(): void {
    this.close();
    const n = this.opts.maxFiles;
    rmSync(`${this.path}.${n}`, { force: true });
    for (let i = n - 1; i >= 1; i--) {
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.rotations++;
    this.checkedAt = 0;
  }

  close(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.fd = null;
  }
}

/** Directory the agent's log files go to. */
export function logDir(config: { stateDir: string; logs: LogFilesConfig }): string {
  return config.logs.dir ?? join(config.stateDir, "logs");
}

/**
 * Adds the rotating file to `logger` (the root logger: every component's
 * records land there). Returns a function that detaches and closes it.
 */
export function attachLogFiles(
  logger: Logger,
  config: { stateDir: string; logs: LogFilesConfig },
): { file: RotatingLogFile | null; detach: () => void } {
  if (!config.logs.enabled) return { file: null, detach: () => {} };
  const file = new RotatingLogFile({
    dir: logDir(config),
    maxBytes: config.logs.maxBytes,
    maxFiles: config.logs.maxFiles,
  });
  const remove = logger.addSink((r: LogRecord) => file.write(JSON.stringify(r)));
  return {
    file,
    detach: () => {
      remove();
      file.close();
    },
  };
}
