/**
 * Fetching from a content repository — a local folder or any static HTTP
 * server. Every read is capped: the caller states the most bytes it will
 * accept (the index's hard cap, or exactly the size the signed index
 * declares for a package), and a transfer that exceeds it, stalls or runs
 * past its deadline is aborted. Nothing here decides trust; it only moves
 * bounded bytes.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { resolve, sep } from "node:path";
import { UpdateError } from "../errors.ts";
import type { Spool, SpoolFile } from "./spool.ts";

export interface FetchOptions {
  maxBytes: number;
  etag?: string;
  timeoutMs: number;
  /** Abort when fewer bytes than this arrive per second, measured over `stallWindowMs`. */
  minBytesPerSecond?: number;
  stallWindowMs?: number;
  /** Write the body here as it arrives, not into memory (packages: spool.ts); the result's `release` frees it. */
  spool?: Spool;
}

export type FetchResult =
  | { status: 200; body: Uint8Array; etag?: string; release?: () => void }
  | { status: 304; etag?: string };

/** Reading size for a folder repository's file, copied into a spool. */
const COPY_CHUNK_BYTES = 1024 * 1024;

export interface Transport {
  readonly describe: string;
  get(path: string, opts: FetchOptions): Promise<FetchResult>;
}

export function transportFor(repo: string, fetchImpl: typeof fetch = fetch): Transport {
  return /^https?:\/\//i.test(repo) ? new HttpTransport(repo, fetchImpl) : new DirTransport(repo);
}

export class DirTransport implements Transport {
  private readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }
  get describe() {
    return this.root;
  }

  async get(path: string, opts: FetchOptions): Promise<FetchResult> {
    const full = resolve(this.root, path);
    if (full !== this.root && !full.startsWith(this.root + sep)) {
      throw new UpdateError("UPD_BAD_PATH", `${path}: path escapes the repository`, { file: path });
    }
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO planted in a folder repository would otherwise block the only
      // thread forever. It changes nothing for regular files, and anything else is refused below.
      fd = openSync(full, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UpdateError(
        code === "ENOENT" ? "UPD_NOT_FOUND" : "UPD_IO",
        `${full}: ${code === "ENOENT" ? "not found in repository" : (e as Error).message}`,
        { file: full, cause: e },
      );
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new UpdateError("UPD_NOT_FOUND", `${full}: not a regular file`, { file: full });
      const etag = `"${st.size.toString(16)}-${Math.trunc(st.mtimeMs).toString(16)}-${st.ino.toString(16)}"`;
      if (opts.etag && opts.etag === etag) return { status: 304, etag };
      if (st.size > opts.maxBytes) {
        throw new UpdateError(
          "UPD_TOO_LARGE",
          `${full}: ${st.size} bytes exceeds the cap of ${opts.maxBytes}`,
          {
            file: full,
          },
        );
      }
      const shrank = () =>
        new UpdateError("UPD_TRUNCATED", `${full}: file shrank while reading`, { file: full });
      if (opts.spool) {
        const body = copyToSpool(fd, st.size, opts.spool.open(full));
        if (body.bytes.length !== st.size) throw shrank();
        return { status: 200, body: body.bytes, etag, release: body.release };
      }
      const body = new Uint8Array(st.size);
      let off = 0;
      while (off < body.length) {
        const n = readSync(fd, body, off, body.length - off, off);
        if (n === 0) break;
        off += n;
      }
      if (off !== body.length) throw shrank();
      return { status: 200, body, etag };
    } finally {
      closeSync(fd);
    }
  }
}

export class HttpTransport implements Transport {
  private readonly base: string;
  constructor(
    base: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.base = base.endsWith("/") ? base : `${base}/`;
  }
  get describe() {
    return this.base;
  }

  async get(path: string, opts: FetchOptions): Promise<FetchResult> {
    const url = new URL(path, this.base).toString();
    const controller = new AbortController();
    let abortReason: UpdateError | undefined;
    const abort = (err: UpdateError) => {
      abortReason ??= err;
      controller.abort(err);
    };
    const deadline = setTimeout(
      () =>
        abort(
          new UpdateError("UPD_TIMEOUT", `${url}: no complete answer within ${opts.timeoutMs} ms`, {
            file: url,
          }),
        ),
      opts.timeoutMs,
    );
    try {
      const headers: Record<string, string> = { "accept-encoding": "identity" };
      if (opts.etag) headers["if-none-match"] = opts.etag;
      let res: Response;
      try {
        res = await this.fetchImpl(url, { headers, signal: controller.signal, redirect: "error" });
      } catch (e) {
        throw abortReason ?? networkError(url, e);
      }
      const etag = res.headers.get("etag") ?? undefined;
      if (res.status === 304) return { status: 304, etag };
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => {});
        throw new UpdateError(
          res.status === 404 ? "UPD_NOT_FOUND" : "UPD_HTTP_STATUS",
          `${url}: server answered HTTP ${res.status}`,
          {
            file: url,
            details: {
              status: res.status,
              retryAfterSeconds: parseRetryAfter(res.headers.get("retry-after")),
            },
          },
        );
      }
      const declared = Number(res.headers.get("content-length") ?? Number.NaN);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        await res.body?.cancel().catch(() => {});
        throw new UpdateError(
          "UPD_TOO_LARGE",
          `${url}: Content-Length ${declared} exceeds the cap of ${opts.maxBytes}`,
          {
            file: url,
          },
        );
      }
      const sink = opts.spool ? spoolSink(opts.spool.open(url)) : memorySink();
      let body: { bytes: Uint8Array; release?: () => void };
      try {
        await readCapped(res, url, opts, sink, abort, () => abortReason);
        body = sink.finish();
      } catch (e) {
        sink.abort();
        throw e;
      }
      if (Number.isFinite(declared) && body.bytes.length < declared) {
        body.release?.();
        throw new UpdateError("UPD_TRUNCATED", `${url}: got ${body.bytes.length} of ${declared} bytes`, {
          file: url,
        });
      }
      return { status: 200, body: body.bytes, etag, ...(body.release ? { release: body.release } : {}) };
    } finally {
      clearTimeout(deadline);
    }
  }
}

/** Where a body's chunks go as they arrive: memory (the index, its signature) or a spool file (packages). */
interface BodySink {
  write(chunk: Uint8Array): void;
  finish(): { bytes: Uint8Array; release?: () => void };
  abort(): void;
}

function memorySink(): BodySink {
  let chunks: Uint8Array[] = [];
  return {
    write: (chunk) => void chunks.push(chunk),
    finish() {
      if (chunks.length === 1) return { bytes: chunks[0]! };
      let total = 0;
      for (const c of chunks) total += c.length;
      const out = new Uint8Array(total);
      let off = 0;
      for (const c of chunks) {
        out.set(c, off);
        off += c.length;
      }
      chunks = [];
      return { bytes: out };
    },
    abort: () => {
      chunks = [];
    },
  };
}

function spoolSink(file: SpoolFile): BodySink {
  return { write: (chunk) => file.write(chunk), finish: () => file.finish(), abort: () => file.abort() };
}

/** A folder repository's file into the spool, a chunk at a time; stops at EOF (the caller checks the size). */
function copyToSpool(fd: number, size: number, file: SpoolFile): { bytes: Uint8Array; release: () => void } {
  try {
    const buf = new Uint8Array(Math.min(COPY_CHUNK_BYTES, Math.max(size, 1)));
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - off), off);
      if (n === 0) break;
      file.write(n === buf.length ? buf : buf.subarray(0, n));
      off += n;
    }
    return file.finish();
  } catch (e) {
    file.abort();
    throw e;
  }
}

async function readCapped(
  res: Response,
  url: string,
  opts: FetchOptions,
  sink: BodySink,
  abort: (e: UpdateError) => void,
  reason: () => UpdateError | undefined,
): Promise<void> {
  const reader = res.body?.getReader();
  if (!reader) return;
  let total = 0;
  const windowMs = opts.stallWindowMs ?? 10_000;
  const minRate = opts.minBytesPerSecond ?? 0;
  let windowBytes = 0;
  // A slow-loris server that trickles bytes would otherwise hold the update loop until the
  // overall deadline; checking throughput per window bounds how long a stalled transfer lives.
  const stallTimer =
    minRate > 0
      ? setInterval(() => {
          if (windowBytes < (minRate * windowMs) / 1000) {
            abort(
              new UpdateError("UPD_STALLED", `${url}: fewer than ${minRate} bytes/s over ${windowMs} ms`, {
                file: url,
              }),
            );
          }
          windowBytes = 0;
        }, windowMs)
      : undefined;
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw reason() ?? truncatedError(url, total, e);
      }
      if (chunk.done) break;
      total += chunk.value.length;
      windowBytes += chunk.value.length;
      if (total > opts.maxBytes) {
        await reader.cancel().catch(() => {});
        throw new UpdateError("UPD_TOO_LARGE", `${url}: more than ${opts.maxBytes} bytes; transfer aborted`, {
          file: url,
        });
      }
      try {
        sink.write(chunk.value);
      } catch (e) {
        // A full disk under the spool: stop the transfer too, not only the writing.
        await reader.cancel().catch(() => {});
        throw e;
      }
    }
  } finally {
    if (stallTimer) clearInterval(stallTimer);
  }
}

function networkError(url: string, e: unknown): UpdateError {
  return new UpdateError("UPD_NETWORK", `${url}: ${(e as Error)?.message ?? String(e)}`, {
    file: url,
    cause: e,
  });
}

function truncatedError(url: string, got: number, e: unknown): UpdateError {
  return new UpdateError(
    "UPD_TRUNCATED",
    `${url}: connection lost after ${got} bytes (${(e as Error)?.message ?? e})`,
    {
      file: url,
      cause: e,
    },
  );
}

/** Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : Math.max(0, Math.round((t - now) / 1000));
}
