/**
 * What can be seen of the trust store and the cached indexes without the
 * X.509 stack (the repair host does not load it): file digests, the shape
 * of a PEM bundle, the structure of each cached index. trust.ts does the
 * real verification where the CMS verifier is available.
 */
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex, sha384Hex } from "../../core/crypto/digest.ts";
import { GROUP_NAME_RE, RepoIndexSchema } from "../../core/repo/index-format.ts";
import type { CachedIndexFacts, TrustFacts } from "./facts.ts";

export function sha256File(path: string): string | null {
  try {
    return sha256Hex(readFileSync(path));
  } catch {
    return null;
  }
}

/**
 * A trust bundle's shape without the X.509 stack: PEM blocks, all
 * CERTIFICATE, each decoding to a DER SEQUENCE. Enough to tell "missing or
 * garbage" from "looks like roots"; trust.ts does the real verification.
 */
export function pemCertificates(text: string): TrustFacts["pem"] {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g)];
  if (blocks.length === 0) return { ok: false, certs: 0, error: "holds no certificates" };
  for (const [i, b] of blocks.entries()) {
    if (b[1] !== "CERTIFICATE")
      return { ok: false, certs: 0, error: `block ${i + 1} is ${b[1]}, not CERTIFICATE` };
    const der = Buffer.from((b[2] ?? "").replace(/\s+/g, ""), "base64");
    if (der.length < 64 || der[0] !== 0x30)
      return { ok: false, certs: 0, error: `certificate ${i + 1} does not parse` };
  }
  return { ok: true, certs: blocks.length };
}

export function cacheGroups(indexCacheDir: string): string[] {
  try {
    return readdirSync(indexCacheDir).sort();
  } catch {
    return [];
  }
}

/** A cached index's files are present and parse (signature not checked here). */
export function inspectCacheStructure(indexCacheDir: string, group: string): CachedIndexFacts {
  const dir = join(indexCacheDir, group);
  const base = { group, serial: null, sha384: null, verified: null };
  if (!GROUP_NAME_RE.test(group)) return { ...base, ok: false, problem: "not a group name" };
  try {
    if (!lstatSync(dir).isDirectory()) return { ...base, ok: false, problem: "not a directory" };
    const index = new Uint8Array(readFileSync(join(dir, "index.json")));
    readFileSync(join(dir, "index.p7s"));
    JSON.parse(readFileSync(join(dir, "meta.json"), "utf8"));
    const parsed = RepoIndexSchema.safeParse(JSON.parse(new TextDecoder().decode(index)));
    if (!parsed.success) return { ...base, ok: false, problem: "index.json is not a valid index" };
    return {
      group,
      ok: true,
      problem: null,
      serial: parsed.data.serial,
      sha384: sha384Hex(index),
      verified: null,
    };
  } catch (e) {
    return { ...base, ok: false, problem: (e as Error).message };
  }
}

/** How many certificates a PEM file holds (0: missing or unusable). */
export function countCerts(file: string): number {
  try {
    return pemCertificates(readFileSync(file, "utf8")).certs;
  } catch {
    return 0;
  }
}
