/**
 * The reference static server for a repository folder. It does nothing nginx
 * would not: GET/HEAD of regular files, strong validators, 304s. The agent
 * relies only on plain GET semantics, so any static server works as well.
 *
 * Refused with 404, never with a hint: anything outside the folder (after
 * resolving symlinks), dot-files (publish's temp and lock files), directories
 * (no listings), and any path with `.`/`..`, empty, or encoded-separator
 * segments.
 */
import { realpathSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, sep } from "node:path";
import { ConfigError } from "../errors.ts";
import { log } from "../log.ts";

const logger = log.child({ component: "repo-server" });

/** Files up to this size are read whole from the descriptor that was stat'ed, so body and ETag always agree. */
const BUFFER_LIMIT = 1024 * 1024;
const INDEX_FILE_RE = /^groups\/[^/]+\/index\.(json|p7s)$/;

const CONTENT_TYPES: Record<string, string> = {
  json: "application/json",
  p7s: "application/pkcs7-signature",
  tar: "application/x-tar",
};

export interface ServeRepoOptions {
  repo: string;
  /** 0 picks a free port; read it back from `.port`. */
  port: number;
  hostname?: string;
}

export type RepoServer = ReturnType<typeof Bun.serve>;

export function serveRepo(opts: ServeRepoOptions): RepoServer {
  const handler = repoRequestHandler(opts.repo);
  return Bun.serve({
    port: opts.port,
    hostname: opts.hostname ?? "127.0.0.1",
    fetch: handler,
    error: (e) => {
      logger.error("request failed", { error: String(e) });
      return new Response("internal error\n", { status: 500 });
    },
  });
}

/** The static repository handler on its own, for servers that add routes (contentctl serve --release). */
export function repoRequestHandler(repo: string): (req: Request) => Promise<Response> {
  let root: string;
  try {
    root = realpathSync(repo);
  } catch (e) {
    throw new ConfigError("CFG_REPO_NOT_FOUND", `${repo}: repository folder not found`, {
      file: repo,
      cause: e,
    });
  }
  return (req) => handle(root, req);
}

async function handle(root: string, req: Request): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return plain(405, "method not allowed", { Allow: "GET, HEAD" });
  }
  const rel = safeRelativePath(req.url);
  if (rel === null) return notFound();
  let real: string;
  try {
    real = realpathSync(join(root, rel));
  } catch {
    return notFound();
  }
  if (!real.startsWith(root + sep)) return notFound();

  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(real, "r");
  } catch {
    return notFound();
  }
  let handedOff = false;
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) return notFound();
    const size = Number(st.size);
    const etag = `"${st.size.toString(16)}-${st.mtimeNs.toString(16)}-${st.ino.toString(16)}"`;
    const headers: Record<string, string> = {
      ETag: etag,
      "Last-Modified": new Date(Number(st.mtimeMs)).toUTCString(),
      "Cache-Control": cacheControl(rel),
      "Content-Type": CONTENT_TYPES[rel.slice(rel.lastIndexOf(".") + 1)] ?? "application/octet-stream",
    };
    if (notModified(req, etag, Number(st.mtimeMs))) return new Response(null, { status: 304, headers });
    headers["Content-Length"] = String(size);
    if (req.method === "HEAD") return new Response(null, { status: 200, headers });
    if (size <= BUFFER_LIMIT) {
      const buf = new Uint8Array(size);
      let off = 0;
      while (off < size) {
        const { bytesRead } = await fh.read(buf, off, size - off, off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return new Response(buf.subarray(0, off), { status: 200, headers });
    }
    // Large files are packages, which publish never rewrites (their names carry their digest).
    handedOff = true;
    await fh.close();
    return new Response(Bun.file(real), { status: 200, headers });
  } finally {
    if (!handedOff) await fh.close();
  }
}

/**
 * The request path as repository-relative segments, or null when refused.
 * Each segment is percent-decoded on its own so an encoded `/` or `\` cannot
 * create a separator after the check.
 */
export function safeRelativePath(url: string): string | null {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return null;
  }
  const parts = pathname.split("/").slice(1);
  const out: string[] = [];
  for (const raw of parts) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (seg === "" || seg.startsWith(".") || /[/\\\u0000-\u001f\u007f]/.test(seg)) return null;
    out.push(seg);
  }
  return out.length ? out.join("/") : null;
}

function cacheControl(rel: string): string {
  if (INDEX_FILE_RE.test(rel)) return "no-cache";
  if (rel.startsWith("packages/")) return "public, max-age=31536000, immutable";
  return "no-cache";
}

/** RFC 9110 §13.1.2: If-None-Match uses weak comparison and takes precedence over If-Modified-Since. */
function notModified(req: Request, etag: string, mtimeMs: number): boolean {
  const inm = req.headers.get("if-none-match");
  if (inm !== null) {
    if (inm.trim() === "*") return true;
    return inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
  }
  const ims = req.headers.get("if-modified-since");
  if (ims === null) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && Math.floor(mtimeMs / 1000) * 1000 <= since;
}

function notFound(): Response {
  return plain(404, "not found");
}

function plain(status: number, text: string, extra: Record<string, string> = {}): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "Content-Type": "text/plain; charset=utf-8", ...extra },
  });
}
