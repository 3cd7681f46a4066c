/**
 * Builds the capability objects a handler receives from its manifest's
 * declared privileges. Undeclared capabilities are absent, not stubbed; the
 * declared ones check every path against the declared globs and every URL
 * against the declared endpoints. This is the API-level half of least
 * privilege; the host process's OS sandbox (uid, Landlock, network
 * namespace) is the half a hostile handler cannot bypass with globals.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, isAbsolute, join, normalize } from "node:path";
import { HandlerError } from "../errors.ts";
import type {
  Capabilities,
  ExecCapability,
  FsCapability,
  HandlerManifest,
  NetCapability,
} from "./contract.ts";

export interface CapabilityContext {
  log: Capabilities["log"];
  emit: (type: string, fields?: Record<string, unknown>) => void;
  workDir: string;
  agentCall?: (method: string, args?: unknown) => Promise<unknown>;
  /** How this host obtains the process view (a request to the supervisor, or a direct read in-process). */
  procView?: NonNullable<Capabilities["hostView"]>["procView"];
  callTimeoutMs?: number;
}

export function createCapabilities(manifest: HandlerManifest, ctx: CapabilityContext): Capabilities {
  const p = manifest.privileges;
  const caps: {
    -readonly [K in keyof Capabilities]: Capabilities[K];
  } = {
    log: ctx.log,
    events: { emit: (type, fields) => ctx.emit(type, { handler: manifest.name, ...fields }) },
    workDir: ctx.workDir,
  };
  if (ctx.callTimeoutMs !== undefined) caps.callTimeoutMs = ctx.callTimeoutMs;
  if (p.fs.mode !== "none") caps.fs = fsCapability(manifest.name, p.fs.mode, p.fs.paths, ctx.workDir);
  if (p.net !== "none") caps.net = netCapability(manifest.name, p.net);
  if (p.exec) caps.exec = execCapability();
  if (p.agent && ctx.agentCall) caps.agent = { call: ctx.agentCall };
  if (p.hostView && ctx.procView) caps.hostView = { procView: ctx.procView };
  return caps;
}

/** Glob match with `**` (any depth) and `*` (one segment). */
export function pathAllowed(path: string, globs: readonly string[]): boolean {
  return globs.some((g) => new Bun.Glob(g).match(path) || path === g.replace(/\/\*\*$/, ""));
}

function fsCapability(
  handler: string,
  mode: "read-only" | "read-write",
  globs: readonly string[],
  workDir: string,
): FsCapability {
  const check = (path: string, write: boolean): string => {
    if (!isAbsolute(path)) {
      throw new HandlerError("HND_FS_DENIED", `${handler}: ${path}: paths must be absolute`, { file: path });
    }
    const clean = normalize(path);
    // Symlinks must not lead out of the declared area: check the real path of what exists.
    let real = clean;
    try {
      real = realpathSync(clean);
    } catch {
      try {
        real = join(realpathSync(dirname(clean)), clean.slice(dirname(clean).length + 1));
      } catch {
        real = clean;
      }
    }
    const inWork = real === workDir || real.startsWith(`${workDir}/`);
    if (!inWork && (!pathAllowed(clean, globs) || !pathAllowed(real, globs))) {
      throw new HandlerError("HND_FS_DENIED", `${handler}: ${path}: outside the declared filesystem access`, {
        file: path,
      });
    }
    if (write && mode !== "read-write" && !inWork) {
      throw new HandlerError("HND_FS_DENIED", `${handler}: ${path}: declared read-only`, { file: path });
    }
    return clean;
  };
  const cap: FsCapability = {
    readFile: (path) => new Uint8Array(readFileSync(check(path, false))),
    readText: (path) => readFileSync(check(path, false), "utf8"),
    list: (dir) => readdirSync(check(dir, false)),
    stat: (path) => {
      try {
        const s = lstatSync(check(path, false));
        return {
          size: s.size,
          mtimeMs: s.mtimeMs,
          mode: s.mode,
          uid: s.uid,
          gid: s.gid,
          isFile: s.isFile(),
          isDirectory: s.isDirectory(),
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
    },
  };
  if (mode === "read-write") {
    cap.writeFile = (path, data, fileMode) => writeFileSync(check(path, true), data, { mode: fileMode });
    cap.chmod = (path, m) => chmodSync(check(path, true), m);
    cap.chown = (path, uid, gid) => chownSync(check(path, true), uid, gid);
    cap.remove = (path) => rmSync(check(path, true), { recursive: true, force: true });
  }
  return cap;
}

function netCapability(handler: string, endpoints: readonly string[]): NetCapability {
  const allowed = endpoints
    .filter((e) => e !== "dns")
    .map((e) => {
      const [scheme, host] = e.split(/:(.+)/) as [string, string];
      return { scheme: `${scheme.toLowerCase()}:`, host: host.toLowerCase() };
    });
  return {
    fetch(url, init) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return Promise.reject(new HandlerError("HND_NET_DENIED", `${handler}: ${url}: not a URL`));
      }
      const ok = allowed.some((a) => a.scheme === u.protocol && (a.host === u.host || a.host === u.hostname));
      if (!ok) {
        return Promise.reject(
          new HandlerError("HND_NET_DENIED", `${handler}: ${u.protocol}//${u.host}: not a declared endpoint`),
        );
      }
      // Redirects could lead to an undeclared host; refuse them.
      return fetch(u, { ...init, redirect: "error" });
    },
  };
}

function execCapability(): ExecCapability {
  return {
    async run(cmd, opts = {}) {
      const proc = Bun.spawn(cmd, {
        stdin: opts.stdin ?? "ignore",
        stdout: "pipe",
        stderr: "pipe",
        timeout: opts.timeoutMs ?? 60_000,
      });
      const [stdout, stderr, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      return { code, stdout, stderr };
    },
  };
}
