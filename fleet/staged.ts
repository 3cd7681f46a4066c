/**
 * Packages a release works with, staged in the release state directory by
 * their SHA-384 (so a restarted engine finds exactly what it staged) and
 * re-checked against it whenever they are read back.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sha384Hex } from "../core/crypto/digest.ts";
import { UpdateError } from "../core/errors.ts";
import { atomicWriteFile } from "../core/fsutil.ts";
import { packagePath } from "../core/repo/index-format.ts";
import type { PackageRef } from "./state.ts";

export function stagePackage(
  stateDir: string,
  type: string,
  version: number,
  bytes: Uint8Array,
  signingTime: Date,
): PackageRef {
  const sha384 = sha384Hex(bytes);
  const file = packagePath(type, version, sha384);
  const full = join(stateDir, file);
  if (!(existsSync(full) && sha384Hex(readFileSync(full)) === sha384)) atomicWriteFile(full, bytes, 0o600);
  return { file, sha384, size: bytes.byteLength, signingTime: signingTime.toISOString() };
}

export function readStaged(stateDir: string, ref: PackageRef): Uint8Array {
  const full = join(stateDir, ref.file);
  const bytes = readPackageFile(full);
  if (sha384Hex(bytes) !== ref.sha384) {
    throw new UpdateError("REL_STAGED_CHANGED", `${full}: staged package no longer matches its SHA-384`, {
      file: full,
    });
  }
  return bytes;
}

export function readPackageFile(file: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    throw new UpdateError(
      "REL_PACKAGE_UNREADABLE",
      `${file}: cannot read package (${(e as Error).message})`,
      {
        file,
        cause: e,
      },
    );
  }
}
