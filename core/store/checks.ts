/**
 * The content store's input checks: names and references it builds paths
 * from, a package's payload against its manifest, stored files against
 * their manifest entries, and its small JSON state files. Defence in depth:
 * the package reader checked most of this, but the store writes to disk by
 * these names (store.ts).
 */
import {
  closeSync,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { IncrementalDigest, sha384Hex } from "../crypto/digest.ts";
import { StoreError } from "../errors.ts";
import type { VerifiedPackage } from "../package/open.ts";
import { pathProblem } from "../package/paths.ts";
import { z } from "../schema/zod.ts";

/** Same rule as a handler's name: the content type is the handler's name. */
export const CONTENT_TYPE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
export const VERSION_REF_RE = /^versions\/\d+-[0-9a-f]{16}$/;
/** Pointer and bad-list files are tiny; anything larger is not ours. */
const MAX_STATE_FILE_BYTES = 256 * 1024;

export function checkType(type: string): void {
  if (!CONTENT_TYPE_RE.test(type)) {
    throw new StoreError("STORE_BAD_TYPE", `invalid content type name ${JSON.stringify(type)}`);
  }
}

export function checkVersionRef(dir: string): void {
  if (!VERSION_REF_RE.test(dir)) {
    throw new StoreError("STORE_BAD_PATH", `not a version directory reference: ${JSON.stringify(dir)}`);
  }
}

/** Defence in depth: the package reader checked this, but the store writes to disk by these paths. */
export function checkPayloadMatchesManifest(pkg: VerifiedPackage): void {
  const { manifest, files } = pkg;
  const where = `${manifest.type} v${manifest.version}`;
  const listed = new Set<string>();
  for (const entry of manifest.files) {
    const problem = pathProblem(entry.path);
    if (problem)
      throw new StoreError("STORE_BAD_PATH", `${where}: ${entry.path}: ${problem.reason}`, {
        file: entry.path,
      });
    if (listed.has(entry.path)) {
      throw new StoreError("STORE_BAD_PATH", `${where}: ${entry.path} listed twice`, { file: entry.path });
    }
    listed.add(entry.path);
    const data = files.get(entry.path);
    if (!data || data.byteLength !== entry.size) {
      throw new StoreError("STORE_PAYLOAD_MISMATCH", `${where}: ${entry.path} missing or of the wrong size`, {
        file: entry.path,
      });
    }
  }
  for (const path of files.keys()) {
    if (!listed.has(path)) {
      throw new StoreError("STORE_PAYLOAD_MISMATCH", `${where}: ${path} is not in the manifest`, {
        file: path,
      });
    }
  }
  // A file and a directory of the same name cannot both be written.
  for (const path of listed) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join("/");
      if (listed.has(prefix)) {
        throw new StoreError("STORE_BAD_PATH", `${where}: ${prefix} is both a file and a directory`, {
          file: path,
        });
      }
    }
  }
}

export function fileProblem(data: Uint8Array, entry: { size: number; sha384: string }): string | undefined {
  if (data.byteLength !== entry.size) return `size ${data.byteLength}, manifest says ${entry.size}`;
  if (sha384Hex(data) !== entry.sha384) return "SHA-384 does not match the manifest";
  return undefined;
}

/** Chunk size of a streamed check: large enough that the hash runs at full speed. */
const STREAM_CHUNK = 1024 * 1024;

/**
 * The same check as `fileProblem`, on a file read in chunks through one buffer, keeping only its
 * first `keep` bytes: a payload file of hundreds of MiB is checked without ever being whole in
 * memory. Reads at most the manifest's size plus one byte, so a file grown on disk is caught without
 * reading all of it. Throws what `openSync`/`readSync` throw (the caller names the file).
 */
export function streamedFileProblem(
  file: string,
  entry: { size: number; sha384: string },
  keep: number,
): { problem?: string; head: Uint8Array } {
  const head = new Uint8Array(Math.min(keep, entry.size));
  const digest = new IncrementalDigest("sha384");
  const chunk = new Uint8Array(Math.min(STREAM_CHUNK, entry.size + 1));
  const fd = openSync(file, "r");
  try {
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.byteLength, null);
      if (n === 0) break;
      const got = chunk.subarray(0, n);
      if (digest.length < head.byteLength)
        head.set(got.subarray(0, head.byteLength - digest.length), digest.length);
      digest.update(got);
      if (digest.length > entry.size) break;
    }
  } finally {
    closeSync(fd);
  }
  if (digest.length > entry.size) return { problem: `larger than the manifest's ${entry.size} bytes`, head };
  if (digest.length < entry.size)
    return { problem: `size ${digest.length}, manifest says ${entry.size}`, head };
  if (digest.digestHex() !== entry.sha384) return { problem: "SHA-384 does not match the manifest", head };
  return { head };
}

export function readStateFile<T>(file: string, schema: z.ZodMiniType<T>, code: string): T | null {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new StoreError(code, `${file}: not a regular file`, { file });
    if (st.size > MAX_STATE_FILE_BYTES)
      throw new StoreError(code, `${file}: ${st.size} bytes, too large`, { file });
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    if (e instanceof StoreError) throw e;
    throw new StoreError(code, `${file}: cannot read (${(e as Error).message})`, { file, cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new StoreError(code, `${file}: not JSON (${(e as Error).message})`, { file, cause: e });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new StoreError(code, `${file}: ${z.prettifyError(parsed.error)}`, { file });
  return parsed.data;
}

/** Regular files under `dir`, as slash-separated relative paths; anything else is reported as a path too. */
export function listFiles(dir: string, prefix = ""): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const st = lstatSync(join(dir, name));
    if (st.isDirectory()) out.push(...listFiles(join(dir, name), rel));
    else out.push(rel);
  }
  return out;
}
