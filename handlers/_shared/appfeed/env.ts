/**
 * What an APPFEED / USERAPPFEED rule may touch (docs/exclusions.md, "Lua
 * API"): the installed-package lists, read-only files under the declared
 * paths, and a few read-only query tools. Everything else is a refusal —
 * an error whose message starts with REFUSED, which the runtime records
 * against the rule (nothing it proposed is excluded) however the rule
 * catches it.
 *
 * Files go through the handler's fs capability (its declared globs,
 * symlinks resolved); the host's Landlock rules make the same paths
 * read-only underneath, so a write is impossible even outside this API.
 * Lua host functions are synchronous, so the query tools run with
 * Bun.spawnSync under a timeout and an output cap.
 */
import { existsSync } from "node:fs";
import type { FsCapability } from "../../../core/handler/contract.ts";

/** Read-only query tools: program → a check of its arguments (the first must select a query). */
export const EXEC_ALLOW: Readonly<Record<string, (args: string[]) => boolean>> = {
  "dpkg-query": (a) =>
    a.length > 0 && /^(-W|--show|-s|--status|-L|--listfiles|-l|--list|-S|--search)$/.test(a[0]!),
  rpm: (a) =>
    a.length > 0 &&
    /^(-q[a-zA-Z]*|--query)$/.test(a[0]!) &&
    !a.some((x) => /^--(eval|pipe|dbpath|root)/.test(x)),
  snap: (a) => a[0] === "list",
  flatpak: (a) => a[0] === "list",
  systemctl: (a) => a[0] === "show" && !a.some((x) => /^(-H|--host|-M|--machine)/.test(x)),
};
const TOOL_DIRS = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];
const EXEC_TIMEOUT_MS = 10_000;
const EXEC_MAX_BYTES = 1024 * 1024;
export const READ_MAX_BYTES = 1024 * 1024;

export interface InstalledApp {
  name: string;
  version: string;
  source: "dpkg" | "rpm" | "snap" | "flatpak";
}

export class RefusedError extends Error {
  constructor(what: string) {
    super(`REFUSED: ${what}`);
  }
}

/** dpkg's status file → installed packages (Status: install ok installed). */
export function parseDpkgStatus(text: string): InstalledApp[] {
  const out: InstalledApp[] = [];
  for (const stanza of text.split(/\n\n+/)) {
    let name = "";
    let version = "";
    let installed = false;
    for (const line of stanza.split("\n")) {
      if (line.startsWith("Package: ")) name = line.slice(9).trim();
      else if (line.startsWith("Version: ")) version = line.slice(9).trim();
      else if (line.startsWith("Status: ")) installed = / installed$/.test(line.trim());
    }
    if (name && installed) out.push({ name, version, source: "dpkg" });
  }
  return out;
}

export interface AppfeedEnvOptions {
  fs: FsCapability;
  /** Where dpkg keeps its status file (tests point it elsewhere). */
  dpkgStatus?: string;
  /** Program lookup (tests: a fake tool directory). */
  toolDirs?: readonly string[];
}

export class AppfeedEnv {
  private apps?: InstalledApp[];
  constructor(private readonly o: AppfeedEnvOptions) {}

  /** Every installed application from dpkg, and from rpm, snap and flatpak where present. */
  installed(): InstalledApp[] {
    if (this.apps) return this.apps;
    const out: InstalledApp[] = [];
    const dpkg = this.o.dpkgStatus ?? "/var/lib/dpkg/status";
    if (existsSync(dpkg)) out.push(...parseDpkgStatus(this.o.fs.readText(dpkg)));
    const lines = (tool: string, args: string[]) => {
      if (!this.tool(tool)) return [];
      const r = this.query(tool, args);
      return r.code === 0 ? r.stdout.split("\n").filter(Boolean) : [];
    };
    if (existsSync("/var/lib/rpm")) {
      for (const l of lines("rpm", ["-qa", "--qf", "%{NAME}\\t%{VERSION}-%{RELEASE}\\n"])) {
        const [name = "", version = ""] = l.split("\t");
        if (name) out.push({ name, version, source: "rpm" });
      }
    }
    for (const l of lines("snap", ["list"]).slice(1)) {
      const [name = "", version = ""] = l.split(/\s+/);
      if (name) out.push({ name, version, source: "snap" });
    }
    for (const l of lines("flatpak", ["list", "--app", "--columns=application,version"])) {
      const [name = "", version = ""] = l.split("\t");
      if (name) out.push({ name, version, source: "flatpak" });
    }
    this.apps = out;
    return out;
  }

  exists(path: string): boolean {
    return this.o.fs.stat(this.path(path)) !== null;
  }

  stat(path: string): { size: number; mtime: number; mode: number; type: string } | null {
    const s = this.o.fs.stat(this.path(path));
    if (!s) return null;
    return {
      size: s.size,
      mtime: Math.floor(s.mtimeMs / 1000),
      mode: s.mode & 0o7777,
      type: s.isDirectory ? "dir" : s.isFile ? "file" : "other",
    };
  }

  read(path: string, max?: number): string | null {
    const p = this.path(path);
    const s = this.o.fs.stat(p);
    if (!s) return null;
    // A symlink (sites-enabled → sites-available) is read through; the capability checked its target.
    if (s.isDirectory) throw new Error(`fs.read: ${path}: a directory (use fs.list)`);
    const limit = Math.min(typeof max === "number" && max > 0 ? max : READ_MAX_BYTES, READ_MAX_BYTES);
    const bytes = this.o.fs.readFile(p);
    return new TextDecoder().decode(bytes.subarray(0, limit));
  }

  list(path: string): string[] {
    const p = this.path(path);
    return this.o.fs.stat(p)?.isDirectory ? this.o.fs.list(p).sort() : [];
  }

  /** Runs an allow-listed query tool; anything else is refused before a process starts. */
  query(tool: string, args: string[]): { code: number; stdout: string; stderr: string } {
    const check = EXEC_ALLOW[tool];
    if (!check)
      throw new RefusedError(
        `exec.query: ${tool} is not an allowed query tool (${Object.keys(EXEC_ALLOW).join(", ")})`,
      );
    if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) {
      throw new Error("exec.query(tool, { args… }): args must be a list of strings");
    }
    if (!check(args))
      throw new RefusedError(`exec.query: ${tool} ${args.join(" ")}: only read-only queries are allowed`);
    const exe = this.tool(tool);
    if (!exe) return { code: 127, stdout: "", stderr: `${tool}: not installed` };
    const r = Bun.spawnSync([exe, ...args], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      timeout: EXEC_TIMEOUT_MS,
      maxBuffer: EXEC_MAX_BYTES,
      env: { PATH: TOOL_DIRS.join(":"), LC_ALL: "C", SYSTEMD_PAGER: "", SYSTEMD_COLORS: "0" },
    });
    const text = (b: Uint8Array | undefined) =>
      new TextDecoder().decode((b ?? new Uint8Array()).subarray(0, EXEC_MAX_BYTES));
    return { code: r.exitCode ?? -1, stdout: text(r.stdout), stderr: text(r.stderr) };
  }

  private tool(name: string): string | undefined {
    for (const d of this.o.toolDirs ?? TOOL_DIRS) if (existsSync(`${d}/${name}`)) return `${d}/${name}`;
    return undefined;
  }

  private path(p: unknown): string {
    if (typeof p !== "string" || !p.startsWith("/"))
      throw new Error(`fs: ${String(p)}: paths must be absolute`);
    // The fs capability refuses paths outside the declared globs (after resolving symlinks); a
    // rule that reaches for one is refused, not merely answered "no".
    const s = (() => {
      try {
        this.o.fs.stat(p);
        return null;
      } catch (e) {
        return (e as { code?: string }).code === "HND_FS_DENIED" ? (e as Error).message : null;
      }
    })();
    if (s) throw new RefusedError(`fs: ${p}: outside the paths APPFEED rules may read`);
    return p;
  }
}
