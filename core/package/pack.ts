/**
 * Building a package from a directory: the vendor side of openPackage. The
 * output depends only on the directory's content, type, version and `now`
 * (file order, modes, owners and times in the tar are fixed) — except the
 * ECDSA signature, which is randomised by nature.
 */
import { lstat, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { signDetached } from "../crypto/cms-sign.ts";
import { sha384Hex } from "../crypto/digest.ts";
import type { SigningKeys } from "../crypto/keys.ts";
import { PackageError } from "../errors.ts";
import { PAYLOAD_DIR, serializeManifest, validateManifest } from "./manifest.ts";
import { MANIFEST_NAME, SIGNATURE_NAME } from "./open.ts";
import { compareUtf8, pathProblem } from "./paths.ts";
import { writeTar } from "./tar.ts";

export interface PackDirectoryOptions {
  type: string;
  version: number;
  keys: SigningKeys;
  /** Its regular files become payload/…; symlinks and special files are refused. */
  dir: string;
  /** Manifest `created` and CMS signingTime; defaults to the current time. */
  now?: Date;
}

export async function packDirectory(opts: PackDirectoryOptions): Promise<Uint8Array> {
  const now = opts.now ?? new Date();
  const payload = await collectRegularFiles(opts.dir);
  const manifest = validateManifest(
    {
      schema: 1,
      type: opts.type,
      version: opts.version,
      created: now.toISOString(),
      files: payload.map((f) => ({ path: f.path, size: f.data.length, sha384: sha384Hex(f.data) })),
    },
    opts.dir,
  );
  const manifestBytes = serializeManifest(manifest);
  const signature = await signDetached(manifestBytes, opts.keys, { signingTime: now });
  // Only files are written: directories are implied by their paths, and omitting them keeps a
  // directory with a 100-byte name from being unrepresentable in ustar.
  return writeTar([
    { path: MANIFEST_NAME, data: manifestBytes },
    { path: SIGNATURE_NAME, data: signature },
    ...payload.map((f) => ({ path: PAYLOAD_DIR + f.path, data: f.data })),
  ]);
}

/** Walks `root` without following symlinks; returns its regular files sorted by UTF-8 path. */
export async function collectRegularFiles(root: string): Promise<{ path: string; data: Uint8Array }[]> {
  // The root itself may be a symlink the caller chose; only what is inside it must not be.
  const rootStat = await stat(root).catch((e: unknown) => {
    throw new PackageError(
      "PKG_PACK_NOT_A_DIRECTORY",
      `${root}: cannot read payload directory: ${(e as Error).message}`,
      {
        file: root,
        cause: e,
      },
    );
  });
  if (!rootStat.isDirectory()) {
    throw new PackageError("PKG_PACK_NOT_A_DIRECTORY", `${root}: payload source is not a directory`, {
      file: root,
    });
  }

  const paths: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const names = await readdir(join(root, relative));
    for (const name of names) {
      const rel = relative ? `${relative}/${name}` : name;
      const full = join(root, rel);
      const problem = pathProblem(rel);
      if (problem) throw new PackageError("PKG_PACK_BAD_PATH", `${full}: ${problem.reason}`, { file: full });
      const st = await lstat(full);
      // A symlink could pull files from outside the directory into signed content; refuse rather than follow.
      if (st.isSymbolicLink())
        throw new PackageError("PKG_PACK_SYMLINK", `${full}: symlinks cannot be packaged`, { file: full });
      if (st.isDirectory()) await walk(rel);
      else if (st.isFile()) paths.push(rel);
      else
        throw new PackageError("PKG_PACK_UNSUPPORTED_FILE", `${full}: not a regular file or directory`, {
          file: full,
        });
    }
  };
  await walk("");
  paths.sort(compareUtf8);
  // One file at a time: a payload of thousands of files must not exhaust file descriptors.
  const files: { path: string; data: Uint8Array }[] = [];
  for (const path of paths) files.push({ path, data: new Uint8Array(await readFile(join(root, path))) });
  return files;
}
