/**
 * Hostile bytes for the attack suite: a hand-rolled ustar header builder
 * (the production writer refuses to emit anything evil), package surgery on
 * validly signed packages, signers issued by the vendor's real intermediate
 * with one property wrong, an index signer that writes whatever index the
 * attacker wants, and repository servers that misbehave for one path.
 * Nothing here is imported by production code.
 */

import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server as NetServer } from "node:net";
import { dirname, join, resolve, sep } from "node:path";
import { signDetached } from "../../core/crypto/cms-sign.ts";
import { sha384Hex } from "../../core/crypto/digest.ts";
import { x509 } from "../../core/crypto/engine.ts";
import { CODE_SIGNING_EKU, KEY_FILES, type SigningKeys } from "../../core/crypto/keys.ts";
import { type CertOverrides, makeCert, type TestCert } from "../../core/crypto/testing.ts";
import { readTar } from "../../core/package/tar.ts";
import {
  INDEX_PATH,
  INDEX_SIG_PATH,
  type IndexEntry,
  packagePath,
  type RepoIndex,
  serializeIndex,
} from "../../core/repo/index-format.ts";
import { readRepoIndex } from "../../core/repo/publish.ts";

// ---------------------------------------------------------------------------
// ustar by hand

const BLOCK = 512;
const enc = new TextEncoder();

export interface RawTarEntry {
  /** Written verbatim into the 100-byte name field: may hold "..", a leading "/", anything. */
  name: string;
  data?: Uint8Array;
  /** "0" file (default), "1" hard link, "2" symlink, "3" char device, "4" block device, "5" directory. */
  typeflag?: string;
  linkname?: string;
  mode?: number;
  devmajor?: number;
  devminor?: number;
}

function put(h: Uint8Array, offset: number, length: number, text: string): void {
  const bytes = enc.encode(text);
  if (bytes.length > length) throw new RangeError(`tar field at ${offset}: ${JSON.stringify(text)} too long`);
  h.set(bytes, offset);
}

function putOctal(h: Uint8Array, offset: number, length: number, value: number): void {
  put(h, offset, length, `${value.toString(8).padStart(length - 1, "0")}\u0000`);
}

/** One POSIX ustar header with a correct checksum, so the reader gets past the checksum to the evil part. */
export function ustarHeader(e: RawTarEntry): Uint8Array {
  const h = new Uint8Array(BLOCK);
  put(h, 0, 100, e.name);
  putOctal(h, 100, 8, e.mode ?? 0o644);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, e.data?.length ?? 0);
  putOctal(h, 136, 12, 0);
  h[156] = (e.typeflag ?? "0").charCodeAt(0);
  put(h, 157, 100, e.linkname ?? "");
  put(h, 257, 8, "ustar\u000000");
  putOctal(h, 329, 8, e.devmajor ?? 0);
  putOctal(h, 337, 8, e.devminor ?? 0);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  put(h, 148, 8, `${sum.toString(8).padStart(6, "0")}\u0000 `);
  return h;
}

/** Headers, data padded to blocks, and the two-zero-block end marker. */
export function craftTar(entries: RawTarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    parts.push(ustarHeader(e));
    const data = e.data ?? new Uint8Array(0);
    const padded = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
    padded.set(data);
    parts.push(padded);
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return Buffer.concat(parts);
}

/** The pieces of a validly signed package, for re-assembling it with one thing changed. */
export interface PackageParts {
  manifest: Uint8Array;
  signature: Uint8Array;
  payload: { path: string; data: Uint8Array }[];
}

export function splitPackage(bytes: Uint8Array): PackageParts {
  const [manifest, signature, ...rest] = readTar(bytes, { file: "split" });
  if (manifest?.path !== "manifest.json" || signature?.path !== "manifest.p7s") {
    throw new Error("not a package: manifest.json and manifest.p7s must come first");
  }
  return {
    manifest: new Uint8Array(manifest.data),
    signature: new Uint8Array(signature.data),
    payload: rest
      .filter((e) => e.type === "file")
      .map((e) => ({ path: e.path, data: new Uint8Array(e.data) })),
  };
}

/** manifest.json, manifest.p7s, the payload, then `extra` entries: a package whose signed part is intact. */
export function assemble(parts: PackageParts, extra: RawTarEntry[] = []): Uint8Array {
  return craftTar([
    { name: "manifest.json", data: parts.manifest },
    { name: "manifest.p7s", data: parts.signature },
    ...parts.payload.map((p) => ({ name: p.path, data: p.data })),
    ...extra,
  ]);
}

// ---------------------------------------------------------------------------
// Signers with one property wrong, issued by the vendor's real intermediate

/** The vendor's intermediate CA (cert + private key from the key directory) as a makeCert issuer. */
export async function loadIntermediate(keysDir: string): Promise<TestCert> {
  const pem = readFileSync(join(keysDir, KEY_FILES.intermediateCert), "utf8");
  const cert = new x509.X509Certificate(pem);
  const keyDer = x509.PemConverter.decode(readFileSync(join(keysDir, KEY_FILES.intermediateKey), "utf8"))[0];
  if (!keyDer) throw new Error(`${keysDir}: no intermediate key`);
  const algorithm = { name: "ECDSA", namedCurve: "P-384" };
  const privateKey = await crypto.subtle.importKey("pkcs8", keyDer, algorithm, false, ["sign"]);
  const publicKey = await cert.publicKey.export(algorithm, ["verify"]);
  return { cert, der: new Uint8Array(cert.rawData), pem, keys: { publicKey, privateKey } };
}

/**
 * A content signer under `issuer`, shaped like initKeys' signer (end entity,
 * digitalSignature, code-signing EKU) except for the `overrides`.
 */
export async function signerUnder(issuer: TestCert, overrides: CertOverrides = {}): Promise<SigningKeys> {
  const signer = await makeCert(
    {
      commonName: "Outpost Content Signer",
      basicConstraints: { ca: false },
      keyUsage: x509.KeyUsageFlags.digitalSignature,
      extendedKeyUsage: [CODE_SIGNING_EKU],
      ...overrides,
    },
    issuer,
  );
  return { signerCert: signer.der, chain: [issuer.der], privateKey: signer.keys.privateKey };
}

// ---------------------------------------------------------------------------
// Writing whatever index the attacker (or a compromised mirror) wants

/** The group's next index: the current one with serial + 1, freshly issued, and `content` changes applied. */
export function nextIndex(
  repo: string,
  group: string,
  content: Record<string, IndexEntry> = {},
  opts: { issued?: Date; expires?: Date; serial?: number; group?: string } = {},
): RepoIndex {
  const previous = readRepoIndex(repo, group);
  const issued = opts.issued ?? new Date();
  return {
    schema: 1,
    group: opts.group ?? group,
    serial: opts.serial ?? (previous?.serial ?? 0) + 1,
    issued: issued.toISOString(),
    expires: (opts.expires ?? new Date(issued.getTime() + 7 * 86_400_000)).toISOString(),
    content: { ...(previous?.content ?? {}), ...content },
  };
}

/**
 * Signs `index` with `keys` and puts the pair in place as groups/<group>/ of
 * `repo` (under the name of `asGroup`, default the index's own group). Each
 * file is renamed into place so it gets a new inode and therefore a new ETag.
 */
export async function writeSignedIndex(
  repo: string,
  index: RepoIndex,
  keys: SigningKeys,
  opts: { asGroup?: string; signingTime?: Date } = {},
): Promise<void> {
  const bytes = serializeIndex(index);
  const signature = await signDetached(bytes, keys, { signingTime: opts.signingTime ?? new Date() });
  const group = opts.asGroup ?? index.group;
  replaceFile(join(repo, INDEX_SIG_PATH(group)), signature);
  replaceFile(join(repo, INDEX_PATH(group)), bytes);
}

/** Copies a group's current signed index pair (e.g. to replay it later). */
export function saveIndexPair(repo: string, group: string): { json: Uint8Array; p7s: Uint8Array } {
  return {
    json: readFileSync(join(repo, INDEX_PATH(group))),
    p7s: readFileSync(join(repo, INDEX_SIG_PATH(group))),
  };
}

export function restoreIndexPair(
  repo: string,
  group: string,
  pair: { json: Uint8Array; p7s: Uint8Array },
): void {
  replaceFile(join(repo, INDEX_SIG_PATH(group)), pair.p7s);
  replaceFile(join(repo, INDEX_PATH(group)), pair.json);
}

export function replaceFile(path: string, data: Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/**
 * Puts `bytes` into the repository as `type` version `version` with an index
 * entry that matches them exactly (size and SHA-384), signed by the vendor —
 * what `publish` does, minus its refusal to publish broken packages. The
 * agent's size and hash checks then pass and the package's own defect is
 * what it must catch.
 */
export async function publishRaw(
  repo: string,
  group: string,
  keys: SigningKeys,
  opts: { type: string; version: number; bytes: Uint8Array },
): Promise<IndexEntry> {
  const entry = putPackage(repo, opts);
  await writeSignedIndex(repo, nextIndex(repo, group, { [opts.type]: entry }), keys);
  return entry;
}

/** Stores package bytes where publish would and returns the index entry that names them exactly. */
export function putPackage(
  repo: string,
  opts: { type: string; version: number; bytes: Uint8Array },
): IndexEntry {
  const sha384 = sha384Hex(opts.bytes);
  const entry: IndexEntry = {
    version: opts.version,
    path: packagePath(opts.type, opts.version, sha384),
    size: opts.bytes.length,
    sha384,
  };
  replaceFile(join(repo, entry.path), opts.bytes);
  return entry;
}

// ---------------------------------------------------------------------------
// Repository servers that misbehave for one path

/** What a hostile server does for the path it targets; undefined serves the file honestly. */
export type Misbehaviour = (path: string, req: Request) => Response | Promise<Response> | undefined;

/** Serves `repo` read-only on 127.0.0.1 (port 0), except where `misbehave` answers instead. */
export function serveRepoWith(repo: string, misbehave: Misbehaviour): ReturnType<typeof Bun.serve> {
  const root = resolve(repo);
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = decodeURIComponent(new URL(req.url).pathname).replace(/^\/+/, "");
      const hostile = misbehave(path, req);
      if (hostile) return hostile;
      const full = resolve(root, path);
      if (!full.startsWith(root + sep) || !existsSync(full) || !statSync(full).isFile()) {
        return new Response("not found\n", { status: 404 });
      }
      return new Response(readFileSync(full));
    },
  });
}

/**
 * A raw HTTP/1.1 server (node:net, so it can lie in its headers, which
 * Bun.serve corrects): serves `repo` honestly, but for paths matching
 * `target` declares the full Content-Length and closes the connection after
 * `sendBytes` bytes of the body.
 */
export async function serveTruncating(
  repo: string,
  target: (path: string) => boolean,
  sendBytes: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const root = resolve(repo);
  const server: NetServer = createServer((sock) => {
    let head = "";
    sock.on("error", () => {});
    sock.on("data", (chunk) => {
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const path = decodeURIComponent(head.split(" ")[1] ?? "/").replace(/^\/+/, "");
      const full = resolve(root, path);
      if (!full.startsWith(root + sep) || !existsSync(full) || !statSync(full).isFile()) {
        sock.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const body = readFileSync(full);
      const sent = target(path) ? body.subarray(0, sendBytes) : body;
      sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      sock.write(sent);
      sock.end();
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
      }),
  };
}
