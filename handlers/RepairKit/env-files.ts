/**
 * The file operations rules reach as `fs.*`: every path is relative to the
 * state directory and resolved without following symlinks out of it;
 * removal of the state directory itself is refused, and `quarantine`
 * moves things aside into STATE/quarantine/ rather than deleting them.
 * Also the context the other operation groups share (env-state.ts,
 * env-trust.ts, env-content.ts), built by RepairEnv (env.ts).
 */
import {
  chmodSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from "node:fs";
import { dirname, isAbsolute, join, normalize, sep } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import type { statePaths } from "../../core/state-paths.ts";
import type { CachedIndexFacts, RepairFacts, RepairMode } from "./facts.ts";

const MAX_READ = 1024 * 1024;
const MAX_LIST = 1000;

/** What every operation group works from; `prepared` is refreshed by RepairEnv.prepare(). */
export interface EnvContext {
  readonly facts: RepairFacts;
  readonly mode: RepairMode;
  readonly paths: ReturnType<typeof statePaths>;
  readonly files: EnvFiles;
  now(): Date;
  /** The cached indexes (a clear drops one) and whether the trust store verified one of them. */
  prepared: { cache: CachedIndexFacts[]; trustVerifies: boolean | null };
}

export class EnvFiles {
  constructor(
    private readonly facts: RepairFacts,
    private readonly now: () => Date,
  ) {}

  /** A state-relative path, refusing absolute paths, `..`, and symlinks on the way. */
  resolve(rel: unknown): string {
    if (typeof rel !== "string" || rel.includes("\0") || isAbsolute(rel)) {
      throw new HandlerError("HND_REPAIR_PATH", `${String(rel)}: paths are relative to the state directory`);
    }
    const clean = normalize(rel);
    if (clean === ".." || clean.startsWith(`..${sep}`) || clean.split(sep).includes("..")) {
      throw new HandlerError("HND_REPAIR_PATH", `${rel}: leaves the state directory`);
    }
    const full = clean === "." ? this.facts.stateDir : join(this.facts.stateDir, clean);
    // Every existing component below the state dir must be a real directory, not a link elsewhere.
    let dir = dirname(full);
    while (dir.length > this.facts.stateDir.length) {
      if (existsSync(dir) && lstatSync(dir).isSymbolicLink()) {
        throw new HandlerError("HND_REPAIR_PATH", `${rel}: ${dir} is a symlink`);
      }
      dir = dirname(dir);
    }
    return full;
  }

  /** Refuses to act through a symlink at `full`. */
  noLink(full: string, what: string): void {
    if (existsSync(full) && lstatSync(full).isSymbolicLink()) {
      throw new HandlerError("HND_REPAIR_PATH", `${what}: ${full} is a symlink; not following it`);
    }
  }

  stat(rel: unknown): Record<string, unknown> | null {
    const full = this.resolve(rel);
    try {
      const s = lstatSync(full);
      return {
        type: s.isFile() ? "file" : s.isDirectory() ? "dir" : s.isSymbolicLink() ? "link" : "other",
        mode: s.mode & 0o7777,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        mtime: Math.floor(s.mtimeMs),
      };
    } catch {
      return null;
    }
  }

  list(rel: unknown): string[] | null {
    const full = this.resolve(rel);
    try {
      return readdirSync(full).sort().slice(0, MAX_LIST);
    } catch {
      return null;
    }
  }

  read(rel: unknown, max?: unknown): string | null {
    const full = this.resolve(rel);
    this.noLink(full, "fs.read");
    try {
      const data = readFileSync(full);
      const n = typeof max === "number" ? Math.min(max, MAX_READ) : MAX_READ;
      return new TextDecoder().decode(data.subarray(0, n));
    } catch {
      return null;
    }
  }

  mkdir(rel: unknown, mode: unknown): void {
    const full = this.resolve(rel);
    const m = typeof mode === "number" ? mode : 0o700;
    mkdirSync(full, { recursive: true, mode: m });
    chmodSync(full, m);
    lchownSync(full, this.facts.agentUid, this.facts.agentGid);
  }

  chmod(rel: unknown, mode: unknown): void {
    const full = this.resolve(rel);
    this.noLink(full, "fs.chmod");
    if (typeof mode !== "number" || mode < 0 || mode > 0o7777)
      throw new HandlerError("HND_REPAIR_ARGS", "fs.chmod: bad mode");
    chmodSync(full, mode);
  }

  chown(rel: unknown, uid: unknown, gid: unknown): void {
    const full = this.resolve(rel);
    if (typeof uid !== "number" || typeof gid !== "number")
      throw new HandlerError("HND_REPAIR_ARGS", "fs.chown: bad ids");
    lchownSync(full, uid, gid);
  }

  /** Moves a file or directory aside into STATE/quarantine/ and returns its new relative path. */
  quarantine(rel: unknown): string {
    const full = this.resolve(rel);
    if (full === this.facts.stateDir)
      throw new HandlerError("HND_REPAIR_PATH", "cannot quarantine the state directory");
    const qdir = join(this.facts.stateDir, "quarantine");
    mkdirSync(qdir, { recursive: true, mode: 0o700 });
    const stamp = this.now().toISOString().replace(/[:.]/g, "-");
    const name = `${stamp}-${String(rel).replace(/[/\\]/g, "_")}`;
    renameSync(full, join(qdir, name));
    return `quarantine/${name}`;
  }

  remove(rel: unknown): void {
    const full = this.resolve(rel);
    if (full === this.facts.stateDir)
      throw new HandlerError("HND_REPAIR_PATH", "cannot remove the state directory");
    rmSync(full, { recursive: true, force: true });
  }
}
