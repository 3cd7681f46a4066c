/**
 * Standard output and error as file descriptors 1 and 2, not as node
 * streams. In Bun the first touch of `process.stdout`, `process.stderr`
 * or `process.stdin` (even `.isTTY`) builds node's stream classes
 * (node:stream, internal:fs/streams): measured on a compiled binary, 20 ms
 * of CPU and 2.2 MiB of heap, paid again by every host process, every CLI
 * run and the supervisor (issue 21: `agent --version` 35 → 21 ms CPU,
 * bench/footprint.ts, bench/scan-startup.ts). Nothing here imports more
 * than node:fs, which every process has already loaded.
 *
 * Writes are synchronous and whole, as node's own are for files and pipes
 * on Linux: a log line is on its descriptor before the next one, and a
 * process that exits right after printing loses nothing. A descriptor left
 * non-blocking by whoever shares it (EAGAIN) is waited on rather than
 * dropped; a reader that went away (EPIPE) ends the output quietly, the
 * way a CLI piped into `head` should.
 */
import { fstatSync, writeSync } from "node:fs";

export type StdStream = "stdout" | "stderr";

const FD: Record<StdStream, number> = { stdout: 1, stderr: 2 };

export type StdWriter = (stream: StdStream, text: string) => void;

/** Streams whose reader has gone (EPIPE): further output to them is dropped. */
const closed = new Set<StdStream>();
/** What a blocking wait waits on: nothing ever wakes it, so it lasts its timeout. */
let waitCell: Int32Array | undefined;

function sleepSync(ms: number): void {
  waitCell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(waitCell, 0, 0, ms);
}

/**
 * Writes all of `bytes` to `fd`. A full non-blocking descriptor (EAGAIN)
 * is retried after `wait(ms)`, backing off from 1 to 50 ms; a reader that
 * has gone (EPIPE, or a closed descriptor) gives "closed".
 */
export function writeAllSync(
  fd: number,
  bytes: Uint8Array,
  wait: (ms: number) => void = sleepSync,
): "written" | "closed" {
  let off = 0;
  let waitMs = 1;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
      waitMs = 1;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN" || code === "EWOULDBLOCK") {
        wait(waitMs);
        waitMs = Math.min(waitMs * 2, 50);
        continue;
      }
      if (code === "EPIPE" || code === "EBADF") return "closed";
      throw e;
    }
  }
  return "written";
}

function writeFd(stream: StdStream, text: string): void {
  if (closed.has(stream) || text.length === 0) return;
  if (writeAllSync(FD[stream], Buffer.from(text, "utf8")) === "closed") closed.add(stream);
}

let writer: StdWriter = writeFd;

/** Text on standard output, as is. */
export function writeStdout(text: string): void {
  writer("stdout", text);
}

/** Text on standard error, as is. */
export function writeStderr(text: string): void {
  writer("stderr", text);
}

// Linux device majors of terminals: 4 (virtual consoles, serial), 5 (/dev/tty, /dev/console,
// ptmx) and 136–143 (pseudo-terminals, /dev/pts/N). /dev/null and the like are other majors.
const TERMINAL_MAJORS = (major: number) => major === 4 || major === 5 || (major >= 136 && major <= 143);

/**
 * Whether a descriptor is a terminal, without node:tty (which loads the
 * stream classes this module avoids): a character device with a terminal
 * major number.
 */
export function isTerminal(fd: 0 | 1 | 2): boolean {
  try {
    const st = fstatSync(fd);
    if (!st.isCharacterDevice()) return false;
    // glibc's major(): bits 8–19, and bits 32 and up for majors past 4095.
    const major = ((st.rdev >>> 8) & 0xfff) | (Math.floor(st.rdev / 2 ** 32) & ~0xfff);
    return TERMINAL_MAJORS(major);
  } catch {
    return false;
  }
}

/**
 * Sends everything written through this module to `to` instead of the
 * descriptors until the returned function is called (tests of commands run
 * in-process).
 */
export function redirectStdio(to: StdWriter): () => void {
  const previous = writer;
  writer = to;
  return () => {
    writer = previous;
  };
}

/** Runs `fn` with what it writes through this module captured instead of printed. */
export async function captureStdio<T>(
  fn: () => T | Promise<T>,
): Promise<{ result: T; stdout: string; stderr: string }> {
  const got: Record<StdStream, string> = { stdout: "", stderr: "" };
  const restore = redirectStdio((stream, text) => {
    got[stream] += text;
  });
  try {
    const result = await fn();
    return { result, ...got };
  } finally {
    restore();
  }
}
