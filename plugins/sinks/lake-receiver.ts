/**
 * A small data-lake ingest endpoint for tests, the demo and `contentctl lake
 * serve`: it accepts result batches from HttpLakeSink and stores each one
 * exactly once. A batch is one file named after its Idempotency-Key, written
 * atomically before the 200 goes out; a key already stored is answered 200
 * `duplicate: true` and not stored again — so a client that never saw the
 * first answer can safely send the same batch again.
 *
 *   POST /v1/results   body: JSON lines (optionally Content-Encoding: gzip)
 *                      headers: Idempotency-Key (required), Authorization: Bearer (when a token is set)
 *   GET  /v1/stats     { batches, lines, duplicates, rejected }
 *   GET  /v1/health
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import type { Server } from "bun";
import { atomicWriteFile } from "../../core/fsutil.ts";

export const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,199}$/;

export interface LakeReceiverOptions {
  dir: string;
  host?: string;
  port?: number;
  token?: string;
  /** Largest request body accepted (compressed), default 32 MiB. */
  maxBodyBytes?: number;
  /** Largest decompressed body, default 256 MiB (a gzip bomb is refused, not inflated). */
  maxInflatedBytes?: number;
  /**
   * Test hook, called after a batch is stored and before the answer: throwing
   * makes the answer a 500 although the batch is kept (the "lost response" case).
   */
  afterStore?: (key: string) => void;
}

export interface LakeStats {
  batches: number;
  lines: number;
  duplicates: number;
  rejected: number;
}

export interface LakeReceiver {
  url: string;
  port: number;
  dir: string;
  stats(): LakeStats;
  /** Every stored line, in key order (tests and the demo). */
  lines(): string[];
  stop(): Promise<void>;
}

function errorResponse(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

function batchFile(dir: string, key: string): string {
  return join(dir, "batches", `${key.replace(/:/g, "_")}.ndjson`);
}

export async function startLakeReceiver(opts: LakeReceiverOptions): Promise<LakeReceiver> {
  const batches = join(opts.dir, "batches");
  mkdirSync(batches, { recursive: true, mode: 0o750 });
  const maxBody = opts.maxBodyBytes ?? 32 * 1024 * 1024;
  const maxInflated = opts.maxInflatedBytes ?? 256 * 1024 * 1024;
  const stats: LakeStats = { batches: 0, lines: 0, duplicates: 0, rejected: 0 };
  for (const f of readdirSync(batches)) {
    if (!f.endsWith(".ndjson")) continue;
    stats.batches++;
    stats.lines += readFileSync(join(batches, f), "utf8").split("\n").filter(Boolean).length;
  }
  const inflight = new Map<string, Promise<Response>>();

  const ingest = async (req: Request): Promise<Response> => {
    if (opts.token && req.headers.get("authorization") !== `Bearer ${opts.token}`) {
      stats.rejected++;
      return errorResponse(401, "LAKE_UNAUTHORIZED", "missing or wrong bearer token");
    }
    const key = req.headers.get("idempotency-key") ?? "";
    if (!KEY_PATTERN.test(key)) {
      stats.rejected++;
      return errorResponse(400, "LAKE_BAD_KEY", "Idempotency-Key header missing or malformed");
    }
    const declared = Number(req.headers.get("content-length") ?? 0);
    if (declared > maxBody) {
      stats.rejected++;
      return errorResponse(413, "LAKE_TOO_LARGE", `body larger than ${maxBody} bytes`);
    }
    const raw = new Uint8Array(await req.arrayBuffer());
    if (raw.length > maxBody) {
      stats.rejected++;
      return errorResponse(413, "LAKE_TOO_LARGE", `body larger than ${maxBody} bytes`);
    }
    const file = batchFile(opts.dir, key);
    if (existsSync(file)) {
      stats.duplicates++;
      return Response.json({ key, accepted: 0, duplicate: true });
    }
    let text: string;
    try {
      const encoding = (req.headers.get("content-encoding") ?? "").toLowerCase();
      const body = encoding === "gzip" ? gunzipSync(raw, { maxOutputLength: maxInflated }) : Buffer.from(raw);
      text = body.toString("utf8");
    } catch (e) {
      stats.rejected++;
      return errorResponse(400, "LAKE_BAD_BODY", `body does not decompress: ${(e as Error).message}`);
    }
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    for (const [i, line] of lines.entries()) {
      let doc: unknown;
      try {
        doc = JSON.parse(line);
      } catch {
        stats.rejected++;
        return errorResponse(400, "LAKE_BAD_BODY", `line ${i + 1} is not JSON`);
      }
      const d = doc as Record<string, unknown> | null;
      if (
        !d ||
        typeof d !== "object" ||
        typeof d.name !== "string" ||
        !("columns" in d || "snapshot" in d || "diffResults" in d)
      ) {
        stats.rejected++;
        return errorResponse(400, "LAKE_BAD_BODY", `line ${i + 1} is not an osquery result log line`);
      }
    }
    atomicWriteFile(file, `${lines.join("\n")}\n`, 0o640);
    stats.batches++;
    stats.lines += lines.length;
    opts.afterStore?.(key);
    return Response.json({ key, accepted: lines.length, duplicate: false });
  };

  const server: Server<undefined> = Bun.serve({
    hostname: opts.host ?? "127.0.0.1",
    port: opts.port ?? 0,
    maxRequestBodySize: maxBody + 1024,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/v1/health") return Response.json({ status: "ok" });
      if (req.method === "GET" && path === "/v1/stats") return Response.json(stats);
      if (req.method !== "POST" || path !== "/v1/results")
        return errorResponse(404, "LAKE_NOT_FOUND", `no route for ${req.method} ${path}`);
      const key = req.headers.get("idempotency-key") ?? "";
      // The same key twice at once (a retry racing a slow first attempt) is answered in turn.
      const before = inflight.get(key) ?? Promise.resolve();
      const run = before.catch(() => undefined).then(() => ingest(req));
      inflight.set(key, run);
      try {
        return await run;
      } catch (e) {
        return errorResponse(500, "LAKE_INTERNAL", (e as Error).message);
      } finally {
        if (inflight.get(key) === run) inflight.delete(key);
      }
    },
  });
  const port = server.port ?? 0;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}/v1/results`,
    port,
    dir: opts.dir,
    stats: () => ({ ...stats }),
    lines: () =>
      readdirSync(batches)
        .filter((f) => f.endsWith(".ndjson"))
        .sort()
        .flatMap((f) => readFileSync(join(batches, f), "utf8").split("\n").filter(Boolean)),
    stop: () => server.stop(true),
  };
}
