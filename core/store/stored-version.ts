/**
 * Reading one stored version back: its manifest, a handler's view of its
 * payload, and a full re-check of its files. The write side (staging,
 * pointers, GC) is store.ts; everything here only reads, and every file it
 * hands out has just been checked against the signed manifest.
 */
import { existsSync, lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "../errors.ts";
import type { ContentView } from "../handler/contract.ts";
import { type Manifest, ManifestSchema } from "../package/manifest.ts";
import { z } from "../schema/zod.ts";
import { decodeStrictJson } from "../strict-json.ts";
import { fileProblem, listFiles, streamedFileProblem } from "./checks.ts";

export interface VerifyProblem {
  path: string;
  reason: string;
}

export interface VerifyReport {
  type: string;
  version: number;
  dir: string;
  /** Files listed in the manifest that were checked. */
  files: number;
  ok: boolean;
  problems: VerifyProblem[];
}

interface VersionRef {
  type: string;
  version: number;
  /** Relative to the type directory: versions/<version>-<sha16>. */
  dir: string;
}

/** The manifest.json of the version in `versionDir`, parsed as the verifier parsed it. */
export function readStoredManifest(versionDir: string): Manifest {
  const file = join(versionDir, "manifest.json");
  let raw: unknown;
  try {
    // The very parser the verifier used, so a manifest that verified also loads (and vice versa).
    raw = decodeStrictJson(readFileSync(file));
  } catch (e) {
    throw new StoreError("STORE_MANIFEST_UNREADABLE", `${file}: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new StoreError("STORE_MANIFEST_UNREADABLE", `${file}: ${z.prettifyError(parsed.error)}`, {
      file,
    });
  }
  return parsed.data;
}

/**
 * A handler's read-only window on a stored version. Files are read on
 * demand and checked against the signed manifest on every read, so a file
 * altered on disk after install is refused rather than loaded.
 */
export function openVersionView(versionDir: string, ref: VersionRef & { signingTime: string }): ContentView {
  const manifest = readStoredManifest(versionDir);
  if (manifest.type !== ref.type || manifest.version !== ref.version) {
    throw new StoreError(
      "STORE_MANIFEST_MISMATCH",
      `${join(versionDir, "manifest.json")}: is ${manifest.type} v${manifest.version}, expected ${ref.type} v${ref.version}`,
      { file: join(versionDir, "manifest.json") },
    );
  }
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  const payloadDir = join(versionDir, "payload");
  const entryOf = (path: string) => {
    const entry = byPath.get(path);
    if (!entry) {
      throw new StoreError(
        "STORE_PATH_NOT_IN_MANIFEST",
        `${ref.type} v${ref.version}: ${path} is not in the manifest`,
        { file: path },
      );
    }
    return { entry, file: join(payloadDir, entry.path) };
  };
  const unreadable = (file: string, e: unknown) =>
    new StoreError("STORE_FILE_MISSING", `${file}: cannot read (${(e as Error).message})`, {
      file,
      cause: e,
    });
  const read = (path: string): Uint8Array => {
    const { entry, file } = entryOf(path);
    let data: Uint8Array;
    try {
      data = readFileSync(file);
    } catch (e) {
      throw unreadable(file, e);
    }
    const problem = fileProblem(data, entry);
    if (problem) throw new StoreError("STORE_FILE_MISMATCH", `${file}: ${problem}`, { file });
    return data;
  };
  const head = (path: string, bytes: number): Uint8Array => {
    const { entry, file } = entryOf(path);
    let checked: ReturnType<typeof streamedFileProblem>;
    try {
      checked = streamedFileProblem(file, entry, bytes);
    } catch (e) {
      throw unreadable(file, e);
    }
    if (checked.problem) throw new StoreError("STORE_FILE_MISMATCH", `${file}: ${checked.problem}`, { file });
    return checked.head;
  };
  return {
    type: ref.type,
    version: ref.version,
    signingTime: ref.signingTime,
    files: manifest.files.map((f) => f.path),
    read,
    readText: (path) => new TextDecoder("utf-8", { fatal: true }).decode(read(path)),
    size: (path) => entryOf(path).entry.size,
    head,
  };
}

/**
 * Re-checks every file of a stored version against its manifest: presence,
 * size, SHA-384, and no files the manifest does not list.
 *
 * `layoutOnly` skips reading the files (presence, regular file, size and no
 * extra files are still checked): for a caller that goes on to read every
 * listed file through `openVersionView`, whose every read checks size and
 * SHA-384 again. Loading content that way reads and hashes each file once,
 * not twice, and the bytes hashed are the very bytes handed over.
 */
export function verifyVersion(
  versionDir: string,
  ref: VersionRef,
  opts: { layoutOnly?: boolean } = {},
): VerifyReport {
  const base = { type: ref.type, version: ref.version, dir: ref.dir };
  const problems: VerifyProblem[] = [];
  let manifest: Manifest;
  try {
    manifest = readStoredManifest(versionDir);
  } catch (e) {
    return { ...base, files: 0, ok: false, problems: [{ path: "manifest.json", reason: String(e) }] };
  }
  if (manifest.type !== ref.type || manifest.version !== ref.version) {
    problems.push({ path: "manifest.json", reason: `names ${manifest.type} v${manifest.version}` });
  }
  if (!existsSync(join(versionDir, "manifest.p7s")))
    problems.push({ path: "manifest.p7s", reason: "missing" });
  const payloadDir = join(versionDir, "payload");
  const listed = new Set<string>();
  for (const entry of manifest.files) {
    listed.add(entry.path);
    const file = join(payloadDir, entry.path);
    try {
      // A symlink could later be pointed elsewhere; the store only ever writes regular files.
      const st = lstatSync(file);
      if (!st.isFile()) {
        problems.push({ path: entry.path, reason: "not a regular file" });
        continue;
      }
      if (opts.layoutOnly) {
        if (st.size !== entry.size)
          problems.push({ path: entry.path, reason: `size ${st.size}, manifest says ${entry.size}` });
        continue;
      }
      // Streamed: `agent content verify` of a 120 MiB executable holds 1 MiB, not the file.
      const { problem } = streamedFileProblem(file, entry, 0);
      if (problem) problems.push({ path: entry.path, reason: problem });
    } catch {
      problems.push({ path: entry.path, reason: "missing or unreadable" });
    }
  }
  for (const extra of listFiles(payloadDir).filter((p) => !listed.has(p))) {
    problems.push({ path: extra, reason: "not in the manifest" });
  }
  return { ...base, files: manifest.files.length, ok: problems.length === 0, problems };
}
