/**
 * Vendor side: put packages into a static repository and (re)sign the group
 * index. Everything is written atomically (temp + fsync + rename) so an HTTP
 * server reading the folder concurrently only ever serves whole files.
 *
 * index.p7s is renamed into place before index.json. A reader that sees the
 * new index.json therefore finds the matching signature already there; a
 * reader that fetched index.json just before a publish and index.p7s just
 * after gets a mismatched pair, fails signature verification and retries on
 * its next cycle. That window is accepted: the pair cannot be swapped by one
 * rename without changing the repository layout.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { TrustStore } from "../crypto/cms.ts";
import { signDetached } from "../crypto/cms-sign.ts";
import { verifyDetached } from "../crypto/cms-verify.ts";
import { sha384Hex } from "../crypto/digest.ts";
import { KEY_FILES, loadSigningKeys } from "../crypto/keys.ts";
import { UpdateError } from "../errors.ts";
import { atomicWriteFile, fsyncDir, writeFileDurable } from "../fsutil.ts";
import { log } from "../log.ts";
import type { Manifest } from "../package/manifest.ts";
import { openPackage, readPackage } from "../package/open.ts";
import { pidAlive } from "../pid.ts";
import {
  checkGroup,
  DEFAULT_EXPIRES_DAYS,
  INDEX_PATH,
  INDEX_SIG_PATH,
  type IndexEntry,
  type PreviousEntry,
  packagePath,
  parseIndex,
  type RepoIndex,
  serializeIndex,
} from "./index-format.ts";

const logger = log.child({ component: "repo" });

interface SignOptions {
  /** Repository root folder. */
  repo: string;
  group: string;
  /** Key directory made by `initKeys` (signer.pem/.key, intermediate.pem, root.pem). */
  keys: string;
  now?: Date;
  expiresInDays?: number;
}

export interface PublishOptions extends SignOptions {
  packageBytes?: Uint8Array;
  packageFile?: string;
  /** Publish a version lower than (or equal to, with other bytes) the one the group lists. */
  allowDowngrade?: boolean;
  /**
   * The entry offered as `previous` (N-1) beside the new one. By default the
   * entry being replaced; a release abort passes the last good version
   * explicitly so the aborted one is never offered to N-1 agents; null
   * offers none.
   */
  previous?: PreviousEntry | null;
}

export interface RemoveTypeOptions extends SignOptions {
  type: string;
}

/** Adds or replaces one content type's package in a group, then re-signs the group index. */
export async function publish(opts: PublishOptions): Promise<RepoIndex> {
  const group = checkGroup(opts.group);
  expiryDays(opts);
  const now = opts.now ?? new Date();
  const { bytes, file } = packageInput(opts);
  const manifest = await readPackageManifest(bytes, file, opts.keys, now);
  const sha384 = sha384Hex(bytes);
  const path = packagePath(manifest.type, manifest.version, sha384);

  return withGroupLock(opts.repo, group, async () => {
    const previous = readRepoIndex(opts.repo, group);
    const listed = previous?.content[manifest.type];
    if (listed && !opts.allowDowngrade) {
      if (manifest.version < listed.version) {
        throw new UpdateError(
          "IDX_DOWNGRADE",
          `${file}: ${manifest.type} v${manifest.version} is older than v${listed.version} in group ${group}; pass allowDowngrade to publish it anyway`,
          { file },
        );
      }
      if (manifest.version === listed.version && listed.sha384 !== sha384) {
        throw new UpdateError(
          "IDX_VERSION_EXISTS",
          `${file}: ${manifest.type} v${manifest.version} is already published in group ${group} with other bytes; agents would not install it — bump the version`,
          { file },
        );
      }
    }
    writePackageFile(opts.repo, path, bytes, sha384);
    const entry: IndexEntry = { version: manifest.version, path, size: bytes.byteLength, sha384 };
    const n1 = opts.previous === undefined ? previousOf(listed, entry) : (opts.previous ?? undefined);
    if (n1 && n1.version >= entry.version) {
      throw new UpdateError(
        "IDX_BAD_PREVIOUS",
        `${file}: previous v${n1.version} must be lower than the published v${entry.version}`,
        { file },
      );
    }
    const content = {
      ...(previous?.content ?? {}),
      [manifest.type]: n1 ? { ...entry, previous: n1 } : entry,
    };
    const index = await signAndWrite(opts, previous, sortedContent(content), now);
    logger.info("published", {
      group,
      type: manifest.type,
      version: manifest.version,
      path,
      serial: index.serial,
    });
    return index;
  });
}

/**
 * What N-1 agents are offered after a publish: the entry being replaced when
 * the new version is higher, the same `previous` when the same package is
 * re-published, nothing after a downgrade (its history is no longer a line).
 */
function previousOf(listed: IndexEntry | undefined, next: IndexEntry): PreviousEntry | undefined {
  if (!listed) return undefined;
  if (listed.version < next.version) {
    const { previous: _older, ...withoutHistory } = listed;
    return withoutHistory;
  }
  if (listed.version === next.version && listed.sha384 === next.sha384) return listed.previous;
  return undefined;
}

/** Re-signs a group's index unchanged apart from serial, issued and expires (run before it expires). */
export async function resign(opts: SignOptions): Promise<RepoIndex> {
  const group = checkGroup(opts.group);
  expiryDays(opts);
  return withGroupLock(opts.repo, group, async () => {
    const previous = requireIndex(opts.repo, group);
    const index = await signAndWrite(opts, previous, previous.content, opts.now ?? new Date());
    logger.info("re-signed", { group, serial: index.serial, expires: index.expires });
    return index;
  });
}

/** Stops offering a content type in a group. Agents keep what they have installed. */
export async function removeType(opts: RemoveTypeOptions): Promise<RepoIndex> {
  const group = checkGroup(opts.group);
  expiryDays(opts);
  return withGroupLock(opts.repo, group, async () => {
    const previous = requireIndex(opts.repo, group);
    if (!previous.content[opts.type]) {
      throw new UpdateError("IDX_UNKNOWN_TYPE", `group ${group} does not list content type ${opts.type}`, {
        file: join(opts.repo, INDEX_PATH(group)),
      });
    }
    const { [opts.type]: _removed, ...rest } = previous.content;
    const index = await signAndWrite(opts, previous, rest, opts.now ?? new Date());
    logger.info("removed type", { group, type: opts.type, serial: index.serial });
    return index;
  });
}

/** The group's current index as stored (unverified: this is the publisher's own folder), or null. */
export function readRepoIndex(repo: string, group: string): RepoIndex | null {
  const file = join(repo, INDEX_PATH(group));
  if (!existsSync(file)) return null;
  return parseIndex(readFileSync(file), file);
}

function requireIndex(repo: string, group: string): RepoIndex {
  const index = readRepoIndex(repo, group);
  if (!index) {
    throw new UpdateError("IDX_NOT_FOUND", `group ${group} has no index yet; publish a package first`, {
      file: join(repo, INDEX_PATH(group)),
    });
  }
  return index;
}

function packageInput(opts: PublishOptions): { bytes: Uint8Array; file: string } {
  if (opts.packageBytes && opts.packageFile) {
    throw new UpdateError("IDX_BAD_ARGS", "publish takes packageBytes or packageFile, not both");
  }
  if (opts.packageBytes) return { bytes: opts.packageBytes, file: "(package bytes)" };
  if (opts.packageFile) return { bytes: readFileSync(opts.packageFile), file: opts.packageFile };
  throw new UpdateError("IDX_BAD_ARGS", "publish needs packageBytes or packageFile");
}

/**
 * Verifies the package against the key directory's root.pem when there is
 * one (so a package signed by the wrong chain never reaches agents), and
 * otherwise only parses it for its type and version.
 */
async function readPackageManifest(
  bytes: Uint8Array,
  file: string,
  keysDir: string,
  now: Date,
): Promise<Manifest> {
  const rootPem = join(keysDir, KEY_FILES.rootCert);
  if (existsSync(rootPem)) {
    const pkg = await openPackage(bytes, await TrustStore.load(rootPem), { file, now });
    return pkg.manifest;
  }
  logger.warn("no root.pem in the key directory: package parsed but its signature not verified", { file });
  return readPackage(bytes, { file }).manifest;
}

function writePackageFile(repo: string, path: string, bytes: Uint8Array, sha384: string): void {
  const dest = join(repo, path);
  if (existsSync(dest) && sha384Hex(readFileSync(dest)) === sha384) return;
  atomicWriteFile(dest, bytes);
}

async function signAndWrite(
  opts: SignOptions,
  previous: RepoIndex | null,
  content: RepoIndex["content"],
  now: Date,
): Promise<RepoIndex> {
  const days = expiryDays(opts);
  const index: RepoIndex = {
    schema: 1,
    group: opts.group,
    serial: (previous?.serial ?? 0) + 1,
    issued: now.toISOString(),
    expires: new Date(now.getTime() + days * 86_400_000).toISOString(),
    content,
  };
  const bytes = serializeIndex(index);
  // Round-trip through the reader's parser: never sign what an agent would refuse.
  parseIndex(bytes, INDEX_PATH(opts.group));
  const signature = await signDetached(bytes, await loadSigningKeys(opts.keys), { signingTime: now });
  await selfVerify(bytes, signature, opts.keys, now);
  writeIndexPair(opts.repo, opts.group, bytes, signature);
  return index;
}

/** Catches a key directory whose signer does not chain to its own root before agents do. */
async function selfVerify(
  bytes: Uint8Array,
  signature: Uint8Array,
  keysDir: string,
  now: Date,
): Promise<void> {
  const rootPem = join(keysDir, KEY_FILES.rootCert);
  if (!existsSync(rootPem)) return;
  await verifyDetached(bytes, signature, await TrustStore.load(rootPem), {
    now,
    file: "index.json (just signed)",
  });
}

function writeIndexPair(repo: string, group: string, json: Uint8Array, p7s: Uint8Array): void {
  const jsonPath = join(repo, INDEX_PATH(group));
  const sigPath = join(repo, INDEX_SIG_PATH(group));
  const dir = resolve(jsonPath, "..");
  const tag = `${process.pid}.${Date.now()}`;
  // Dot-names: the reference server never serves them, so a half-written temp is invisible.
  const tmpJson = join(dir, `.index.json.${tag}.tmp`);
  const tmpSig = join(dir, `.index.p7s.${tag}.tmp`);
  try {
    writeFileDurable(tmpJson, json);
    writeFileDurable(tmpSig, p7s);
    distinctValidator(jsonPath, tmpJson, json.byteLength);
    renameSync(tmpSig, sigPath);
    renameSync(tmpJson, jsonPath);
  } finally {
    rmSync(tmpJson, { force: true });
    rmSync(tmpSig, { force: true });
  }
  fsyncDir(dir);
}

/**
 * Static servers derive validators from size and mtime in whole seconds
 * (nginx's ETag is "mtime-size"). Two publishes of a same-sized index within
 * one second would share an ETag, and agents revalidating in between would
 * be told 304 and keep the older index until the next change. Moving the new
 * file's mtime past the old one's second keeps every publish visible.
 */
function distinctValidator(current: string, next: string, size: number): void {
  let old: { size: number; mtimeMs: number };
  try {
    old = statSync(current);
  } catch {
    return;
  }
  const mtime = statSync(next).mtimeMs;
  if (old.size !== size || Math.floor(mtime / 1000) > Math.floor(old.mtimeMs / 1000)) return;
  const bumped = new Date((Math.floor(old.mtimeMs / 1000) + 1) * 1000);
  utimesSync(next, bumped, bumped);
}

function expiryDays(opts: SignOptions): number {
  const days = opts.expiresInDays ?? DEFAULT_EXPIRES_DAYS;
  if (!(Number.isFinite(days) && days > 0 && days <= 366)) {
    throw new UpdateError("IDX_BAD_ARGS", `expiresInDays must be in (0, 366], got ${days}`);
  }
  return days;
}

function sortedContent(content: RepoIndex["content"]): RepoIndex["content"] {
  return Object.fromEntries(Object.entries(content).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * One publisher per group at a time, or two could sign the same serial. The
 * lock file holds the owner's pid; a lock whose owner is gone is taken over.
 */
async function withGroupLock<T>(repo: string, group: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(repo, "groups", group);
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, ".publish.lock");
  acquireLock(lock);
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function acquireLock(lock: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = Number.parseInt(readFileSafe(lock), 10);
    if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) {
      throw new UpdateError("IDX_LOCKED", `${lock}: another publish (pid ${owner}) is in progress`, {
        file: lock,
      });
    }
    logger.warn("removing stale publish lock", { file: lock, owner });
    rmSync(lock, { force: true });
  }
  throw new UpdateError("IDX_LOCKED", `${lock}: could not take the publish lock`, { file: lock });
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
