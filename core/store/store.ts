/**
 * The agent's local content store. Per content type:
 *
 *   content/<Type>/versions/<version>-<sha16>/  manifest.json, manifest.p7s, payload/…, .complete
 *   content/<Type>/current.json                 the active version (THE commit point)
 *   content/<Type>/lkg.json                     last-known-good, kept for rollback
 *   content/<Type>/bad.json                     versions that crash-looped or failed to load
 *   content/<Type>/staging/                     work area; temp files and trash; wiped by open()
 *
 * Crash safety rests on three rules:
 *  1. A version directory is built completely in staging/ (every file and
 *     directory fsynced, `.complete` written last) and only then renamed into
 *     versions/, so anything in versions/ is whole; `open()` removes anything
 *     without the marker as a second line of defence.
 *  2. Pointers are replaced by rename (temp in staging/, fsync, rename, fsync
 *     dir), so each pointer is always the old or the new one, and a pointer is
 *     only ever written to name a directory that is already durable.
 *  3. Version directories leave versions/ by a rename into staging/ before
 *     being deleted, so a half-deleted tree never looks complete.
 * After any prefix of the store's syscalls, `open()` + `installed()` yields
 * exactly the old or the new version with every file intact.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { describeError, StoreError } from "../errors.ts";
import type { ContentView } from "../handler/contract.ts";
import { log } from "../log.ts";
import type { Manifest } from "../package/manifest.ts";
import type { VerifiedPackage } from "../package/open.ts";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";
import {
  CONTENT_TYPE_RE,
  checkPayloadMatchesManifest,
  checkType,
  checkVersionRef,
  fileProblem,
  readStateFile,
  VERSION_REF_RE,
} from "./checks.ts";
import {
  atomicReplace,
  atomicReplaceJson,
  fsyncDirAt,
  mkdirTracked,
  randomSuffix,
  removeTree,
  renameDurable,
  unlinkDurable,
  writeNewFileSynced,
} from "./durable.ts";
import { assertNotSymlink, refuseStateSymlinks } from "./state-links.ts";
import { openVersionView, type VerifyReport, verifyVersion } from "./stored-version.ts";

export type { VerifyProblem, VerifyReport } from "./stored-version.ts";

export { CONTENT_TYPE_RE };

const logger = log.child({ component: "store" });

const SHA384_HEX_RE = /^[0-9a-f]{96}$/;
const VERSION_DIR_RE = /^(\d+)-([0-9a-f]{16})$/;
const COMPLETE_MARKER = ".complete";

export function versionDirName(version: number, sha384: string): string {
  return `${version}-${sha384.slice(0, 16)}`;
}

const InstalledRecordSchema = lazySchema(() =>
  z
    .strictObject({
      type: z.string().check(z.regex(CONTENT_TYPE_RE)),
      version: z.int().check(z.nonnegative()),
      /** Relative to the type directory; always versions/<version>-<sha16>. */
      dir: z.string().check(z.regex(VERSION_REF_RE)),
      sha384: z.string().check(z.regex(SHA384_HEX_RE)),
      signingTime: z.iso.datetime(),
      installedAt: z.iso.datetime(),
    })
    .check(
      z.refine((r) => r.dir === `versions/${versionDirName(r.version, r.sha384)}`, {
        message: "dir does not match version and sha384",
      }),
    ),
);

export type InstalledRecord = z.infer<typeof InstalledRecordSchema>;

const BadListSchema = lazySchema(() =>
  z.strictObject({
    type: z.string().check(z.regex(CONTENT_TYPE_RE)),
    versions: z.array(
      z.strictObject({ version: z.int().check(z.nonnegative()), reason: z.string(), at: z.iso.datetime() }),
    ),
  }),
);

export type BadRecord = z.infer<typeof BadListSchema>["versions"][number];

/** A version written into versions/ but not yet the active one. */
export interface StagedContent {
  readonly type: string;
  readonly version: number;
  readonly sha384: string;
  /** Relative to the type directory, like InstalledRecord.dir. */
  readonly dir: string;
  readonly signingTime: string;
  readonly manifest: Manifest;
}

type PointerName = "current" | "lkg";

export class ContentStore {
  /** STATE/content */
  readonly root: string;
  private readonly now: () => Date;
  /** Staged but not yet activated, per type: GC must not take them from under the updater. */
  private readonly pending = new Map<string, Set<string>>();

  constructor(stateDir: string, opts: { now?: () => Date } = {}) {
    this.root = resolve(stateDir, "content");
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Prepares the store after start (or a crash): removes staging leftovers
   * and incomplete version directories, then collects versions no pointer
   * names. A type whose pointers are unreadable is left as it is for the
   * caller to repair: deleting by a pointer we cannot read could delete the
   * version that pointer names.
   */
  open(): void {
    refuseStateSymlinks(resolve(this.root, ".."));
    if (mkdirTracked(this.root)) fsyncDirAt(resolve(this.root, ".."));
    this.pending.clear();
    for (const type of this.types()) {
      const typeDir = this.typeDir(type);
      const staging = join(typeDir, "staging");
      // An empty staging directory (every clean start) stays: removing and recreating it cost a
      // directory fsync per content type on each start, every one-shot command's included.
      if (holdsLeftovers(staging)) removeTree(staging);
      this.ensureTypeDirs(type);
      const versions = join(typeDir, "versions");
      for (const name of readdirSync(versions)) {
        if (!VERSION_DIR_RE.test(name)) {
          logger.warn("unexpected entry in versions/, left alone", { type, entry: name });
          continue;
        }
        if (!existsSync(join(versions, name, COMPLETE_MARKER))) {
          logger.warn("removing incomplete version directory", { type, dir: name });
          this.discardDir(type, name);
        }
      }
      this.gc(type);
    }
  }

  /** Content types that have a directory in the store. */
  types(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && CONTENT_TYPE_RE.test(d.name))
      .map((d) => d.name)
      .sort();
  }

  /** The active version, or null. Throws STORE_CORRUPT_POINTER / STORE_VERSION_MISSING. */
  installed(type: string): InstalledRecord | null {
    return this.readPointer(type, "current");
  }

  /** The last-known-good version kept for rollback, or null. */
  lkg(type: string): InstalledRecord | null {
    return this.readPointer(type, "lkg");
  }

  /**
   * Writes a verified package into versions/. Idempotent: an existing
   * complete directory for the same version and digest is reused when its
   * files still match; otherwise it is replaced.
   */
  stage(pkg: VerifiedPackage, sha384: string): StagedContent {
    const { manifest } = pkg;
    const type = manifest.type;
    checkType(type);
    if (!SHA384_HEX_RE.test(sha384)) {
      throw new StoreError("STORE_BAD_DIGEST", `stage ${type}: sha384 must be 96 lowercase hex digits`);
    }
    checkPayloadMatchesManifest(pkg);
    const name = versionDirName(manifest.version, sha384);
    const staged: StagedContent = {
      type,
      version: manifest.version,
      sha384,
      dir: `versions/${name}`,
      signingTime: pkg.signingTime.toISOString(),
      manifest,
    };
    this.ensureTypeDirs(type);
    const target = join(this.typeDir(type), staged.dir);

    if (existsSync(target)) {
      if (this.existingMatches(type, name, pkg)) {
        this.pin(type, name);
        logger.info("version already staged", { type, version: manifest.version, dir: staged.dir });
        return staged;
      }
      logger.warn("replacing damaged version directory", { type, dir: staged.dir });
      this.discardDir(type, name);
    }

    const work = join(this.typeDir(type), "staging", `stage-${name}-${randomSuffix()}`);
    try {
      mkdirTracked(work);
      const dirs = new Set<string>([work]);
      writeNewFileSynced(join(work, "manifest.json"), pkg.manifestBytes, 0o444);
      writeNewFileSynced(join(work, "manifest.p7s"), pkg.signatureBytes, 0o444);
      const payload = join(work, "payload");
      mkdirTracked(payload);
      dirs.add(payload);
      for (const entry of manifest.files) {
        const dest = join(payload, entry.path);
        const parent = resolve(dest, "..");
        for (let d = parent; !dirs.has(d); d = resolve(d, "..")) {
          mkdirTracked(d);
          dirs.add(d);
        }
        writeNewFileSynced(dest, pkg.files.get(entry.path)!, 0o444);
      }
      // Deepest first, so each directory's entries are durable before its parent's.
      for (const d of [...dirs].sort((a, b) => b.length - a.length)) fsyncDirAt(d);
      writeNewFileSynced(join(work, COMPLETE_MARKER), `${staged.dir}\n`, 0o444);
      fsyncDirAt(work);
      renameDurable(work, target);
    } catch (e) {
      // A full or failing disk: the half-built copy only takes space; open() would remove it anyway.
      const code = describeError(e).code;
      if (code === "STORE_NO_SPACE" || code === "STORE_WRITE_FAILED")
        rmSync(work, { recursive: true, force: true });
      throw e;
    }
    this.pin(type, name);
    logger.info("staged", { type, version: manifest.version, dir: staged.dir, files: manifest.files.length });
    return staged;
  }

  /**
   * Makes a staged version the active one: the previous active version
   * becomes last-known-good, then current.json is replaced. That rename is
   * the commit point; a crash before it leaves the old version active.
   */
  activate(staged: StagedContent): InstalledRecord {
    const { type } = staged;
    checkType(type);
    checkVersionRef(staged.dir);
    const name = staged.dir.replace(/^versions\//, "");
    if (!existsSync(join(this.typeDir(type), staged.dir, COMPLETE_MARKER))) {
      throw new StoreError("STORE_NOT_STAGED", `${type} ${staged.dir} is not a complete staged version`, {
        file: join(this.typeDir(type), staged.dir),
      });
    }
    if (this.isBad(type, staged.version)) {
      throw new StoreError("STORE_VERSION_BAD", `${type} version ${staged.version} is marked bad`, {
        file: this.stateFile(type, "bad"),
      });
    }
    const previous = this.readPointerLenient(type, "current");
    const record: InstalledRecord = {
      type,
      version: staged.version,
      dir: staged.dir,
      sha384: staged.sha384,
      signingTime: staged.signingTime,
      installedAt: this.now().toISOString(),
    };
    if (previous?.dir === staged.dir) {
      this.unpin(type, name);
      return previous;
    }
    if (previous) this.writePointer(type, "lkg", previous);
    this.writePointer(type, "current", record);
    this.unpin(type, name);
    logger.info("activated", { type, version: record.version, previousVersion: previous?.version ?? null });
    this.gcQuietly(type);
    return record;
  }

  /**
   * Swaps current and last-known-good. current.json is written first: if we
   * die between the two writes, the rollback target is already active and
   * only the version being abandoned is forgotten.
   */
  rollback(type: string): InstalledRecord {
    checkType(type);
    const target = this.lkg(type);
    if (!target) {
      throw new StoreError("STORE_NO_LKG", `${type}: no last-known-good version to roll back to`, {
        file: this.stateFile(type, "lkg"),
      });
    }
    const abandoned = this.readPointerLenient(type, "current");
    const record: InstalledRecord = { ...target, installedAt: this.now().toISOString() };
    this.writePointer(type, "current", record);
    if (abandoned && abandoned.dir !== target.dir) this.writePointer(type, "lkg", abandoned);
    else unlinkDurable(this.stateFile(type, "lkg"));
    logger.warn("rolled back", { type, version: record.version, from: abandoned?.version ?? null });
    return record;
  }

  /** Records that a version must not be activated again (crash loop, failed load). */
  markBad(type: string, version: number, reason: string): void {
    checkType(type);
    let list: BadRecord[];
    try {
      list = this.badVersions(type);
    } catch (e) {
      // The list is advisory; a fresh one that holds the new verdict beats a corrupt one.
      logger.warn("bad.json unreadable, starting a new list", { type, error: String(e) });
      list = [];
    }
    const entry: BadRecord = { version, reason, at: this.now().toISOString() };
    const versions = [...list.filter((b) => b.version !== version), entry].sort(
      (a, b) => a.version - b.version,
    );
    this.ensureTypeDirs(type);
    atomicReplaceJson(this.stateFile(type, "bad"), { type, versions }, this.stagingDir(type));
    logger.warn("version marked bad", { type, version, reason });
  }

  isBad(type: string, version: number): boolean {
    return this.badVersions(type).some((b) => b.version === version);
  }

  /** Throws STORE_CORRUPT_STATE when bad.json is unreadable. */
  badVersions(type: string): BadRecord[] {
    checkType(type);
    const file = this.stateFile(type, "bad");
    const parsed = readStateFile(file, BadListSchema, "STORE_CORRUPT_STATE");
    if (!parsed) return [];
    if (parsed.type !== type) {
      throw new StoreError("STORE_CORRUPT_STATE", `${file}: names type ${parsed.type}, expected ${type}`, {
        file,
      });
    }
    return parsed.versions;
  }

  /**
   * Removes version directories no pointer (and no pending stage) names.
   * Skipped, with a warning, when a pointer cannot be read. Returns the
   * removed directory names.
   */
  gc(type: string): string[] {
    checkType(type);
    const versions = join(this.typeDir(type), "versions");
    if (!existsSync(versions)) return [];
    const keep = new Set(this.pending.get(type) ?? []);
    try {
      for (const which of ["current", "lkg"] as const) {
        const p = this.readPointerFile(type, which);
        if (p) keep.add(p.dir.replace(/^versions\//, ""));
      }
    } catch (e) {
      logger.warn("gc skipped: pointer unreadable", { type, error: String(e) });
      return [];
    }
    const removed: string[] = [];
    for (const name of readdirSync(versions)) {
      if (!VERSION_DIR_RE.test(name) || keep.has(name)) continue;
      this.discardDir(type, name);
      removed.push(name);
    }
    if (removed.length) logger.info("gc removed versions", { type, removed });
    return removed;
  }

  /** Drops a staged version that will not be activated (e.g. the handler rejected it). */
  discard(staged: StagedContent): void {
    const name = staged.dir.replace(/^versions\//, "");
    this.unpin(staged.type, name);
    this.gc(staged.type);
  }

  /**
   * A handler's read-only window on a stored version; each file is checked
   * against the signed manifest on every read (stored-version.ts).
   */
  view(ref: Pick<InstalledRecord, "type" | "version" | "dir" | "signingTime">): ContentView {
    checkType(ref.type);
    checkVersionRef(ref.dir);
    return openVersionView(join(this.typeDir(ref.type), ref.dir), ref);
  }

  /**
   * Re-checks every file of the active version against its stored manifest
   * (stored-version.ts). Returns null when nothing is installed.
   */
  verifyInstalled(
    type: string,
    record: InstalledRecord | null = this.installed(type),
    opts: { layoutOnly?: boolean } = {},
  ): VerifyReport | null {
    if (!record) return null;
    return verifyVersion(join(this.typeDir(type), record.dir), record, opts);
  }

  // ---- internals -------------------------------------------------------

  private typeDir(type: string): string {
    return join(this.root, type);
  }

  private stagingDir(type: string): string {
    return join(this.typeDir(type), "staging");
  }

  private stateFile(type: string, which: PointerName | "bad"): string {
    return join(this.typeDir(type), `${which}.json`);
  }

  private ensureTypeDirs(type: string): void {
    // Every write path comes through here: never write through a link (state-links.ts).
    const typeDir = this.typeDir(type);
    for (const d of [this.root, typeDir, join(typeDir, "versions"), join(typeDir, "staging")])
      assertNotSymlink(d);
    if (mkdirTracked(this.root)) fsyncDirAt(resolve(this.root, ".."));
    if (mkdirTracked(typeDir)) fsyncDirAt(this.root);
    let changed = mkdirTracked(join(typeDir, "versions"));
    changed = mkdirTracked(join(typeDir, "staging")) || changed;
    if (changed) fsyncDirAt(typeDir);
  }

  private pin(type: string, name: string): void {
    const set = this.pending.get(type) ?? new Set<string>();
    set.add(name);
    this.pending.set(type, set);
  }

  private unpin(type: string, name: string): void {
    this.pending.get(type)?.delete(name);
  }

  /** Moves a version directory out of versions/ (atomic), then deletes it from staging/. */
  private discardDir(type: string, name: string): void {
    this.ensureTypeDirs(type);
    const trash = join(this.stagingDir(type), `trash-${name}-${randomSuffix()}`);
    renameDurable(join(this.typeDir(type), "versions", name), trash);
    removeTree(trash);
  }

  private existingMatches(type: string, name: string, pkg: VerifiedPackage): boolean {
    const dir = join(this.typeDir(type), "versions", name);
    try {
      if (!existsSync(join(dir, COMPLETE_MARKER))) return false;
      if (!Buffer.from(readFileSync(join(dir, "manifest.json"))).equals(pkg.manifestBytes)) return false;
      return pkg.manifest.files.every((entry) => {
        const data = readFileSync(join(dir, "payload", entry.path));
        return fileProblem(data, entry) === undefined;
      });
    } catch {
      return false;
    }
  }

  private readPointerFile(type: string, which: PointerName): InstalledRecord | null {
    checkType(type);
    const file = this.stateFile(type, which);
    const record = readStateFile(file, InstalledRecordSchema, "STORE_CORRUPT_POINTER");
    if (record && record.type !== type) {
      throw new StoreError("STORE_CORRUPT_POINTER", `${file}: names type ${record.type}, expected ${type}`, {
        file,
      });
    }
    return record;
  }

  private readPointer(type: string, which: PointerName): InstalledRecord | null {
    const record = this.readPointerFile(type, which);
    if (!record) return null;
    const dir = join(this.typeDir(type), record.dir);
    if (!existsSync(join(dir, COMPLETE_MARKER))) {
      throw new StoreError(
        "STORE_VERSION_MISSING",
        `${this.stateFile(type, which)}: names ${record.dir}, which is missing or incomplete`,
        { file: dir },
      );
    }
    return record;
  }

  /** For steps that replace a pointer anyway: an unreadable old value is logged, not fatal. */
  private readPointerLenient(type: string, which: PointerName): InstalledRecord | null {
    try {
      return this.readPointer(type, which);
    } catch (e) {
      logger.warn(`${which}.json unreadable, ignoring it`, { type, error: String(e) });
      return null;
    }
  }

  private writePointer(type: string, which: PointerName, record: InstalledRecord): void {
    this.ensureTypeDirs(type);
    atomicReplace(this.stateFile(type, which), `${JSON.stringify(record, null, 2)}\n`, this.stagingDir(type));
  }

  private gcQuietly(type: string): void {
    try {
      this.gc(type);
    } catch (e) {
      logger.warn("gc failed", { type, error: String(e) });
    }
  }
}

/** For tests and repair tools: the absolute directory of a stored version. */
export function versionPath(store: ContentStore, ref: Pick<InstalledRecord, "type" | "dir">): string {
  const p = join(store.root, ref.type, ref.dir);
  if (!p.startsWith(store.root + sep))
    throw new StoreError("STORE_BAD_PATH", `version path escapes store: ${ref.dir}`);
  return p;
}

/**
 * Whether a type's staging directory holds anything an interrupted install left: entries, or
 * something other than a directory where it belongs (a file, a link). Absent: nothing to clear.
 */
function holdsLeftovers(staging: string): boolean {
  let isDir: boolean;
  try {
    isDir = lstatSync(staging).isDirectory();
  } catch {
    return false;
  }
  return !isDir || readdirSync(staging).length > 0;
}
