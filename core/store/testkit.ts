/**
 * Test support for the store: a real key directory and real signed packages
 * (packDirectory + openPackage), so store tests exercise what the updater
 * will hand the store. Not imported by production code.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { TrustStore } from "../crypto/cms.ts";
import { sha384Hex } from "../crypto/digest.ts";
import { initKeys, KEY_FILES, loadSigningKeys, type SigningKeys } from "../crypto/keys.ts";
import { openPackage, type VerifiedPackage } from "../package/open.ts";
import { packDirectory } from "../package/pack.ts";

export const TEST_NOW = new Date("2026-03-01T12:00:00.000Z");

export interface TestSigner {
  keysDir: string;
  keys: SigningKeys;
  trust: TrustStore;
  rootPem: string;
}

export async function makeSigner(parent: string, now = TEST_NOW): Promise<TestSigner> {
  const keysDir = join(parent, "keys");
  await initKeys(keysDir, { now });
  const rootPem = join(keysDir, KEY_FILES.rootCert);
  return { keysDir, keys: await loadSigningKeys(keysDir), trust: await TrustStore.load(rootPem), rootPem };
}

export interface TestPackage {
  bytes: Uint8Array;
  sha384: string;
  pkg: VerifiedPackage;
}

/** Packs `files` (payload path → content) as a signed package and opens it again, verified. */
export async function makePackage(
  signer: TestSigner,
  type: string,
  version: number,
  files: Record<string, string | Uint8Array>,
  now = TEST_NOW,
): Promise<TestPackage> {
  const dir = mkdtempSync(join(tmpdir(), "outpost-pkgsrc-"));
  try {
    for (const [path, data] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), data);
    }
    const bytes = await packDirectory({ type, version, keys: signer.keys, dir, now });
    const pkg = await openPackage(bytes, signer.trust, { file: `${type}-${version}.tar`, now });
    return { bytes, sha384: sha384Hex(bytes), pkg };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
