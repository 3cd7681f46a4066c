/**
 * The host's process view, read by the supervisor for a sandboxed host whose
 * group and handler declared `hostView`.
 *
 * Why it exists: Landlock scopes ptrace-mode access. A sandboxed process may
 * not readlink /proc/PID/{exe,cwd,root,ns/net,fd/N} nor read
 * /proc/PID/{environ,maps} of a process outside its own domain, whatever its
 * uid and capabilities. The query host runs read-only as root precisely to
 * see every process, yet under the sandbox `processes` lost every path, cwd
 * and root, and `listening_ports` every pid (issue 22, item 3). Lifting the
 * sandbox would give the host far more than it needs; instead the supervisor,
 * outside the sandbox, reads exactly these entries — link targets, the
 * environment and the memory map — on request, and nothing else: no file
 * contents, no memory, no signals. Pure parsing lives here; the caller does
 * the reading through `takeProcView`.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { lazySchema } from "../schema/lazy-schema.ts";
import { z } from "../schema/zod.ts";

/** What a query needs; each part costs a walk over every process. */
export const ProcViewPartSchema = lazySchema(() => z.enum(["links", "fds", "environ", "maps"]));
export type ProcViewPart = z.infer<typeof ProcViewPartSchema>;

export const ProcViewRequestSchema = lazySchema(() =>
  z.strictObject({ parts: z.array(ProcViewPartSchema).check(z.minLength(1), z.maxLength(4)) }),
);
export type ProcViewRequest = z.infer<typeof ProcViewRequestSchema>;

/** One process as the supervisor saw it; absent fields were not asked for or not readable. */
export interface ProcEntry {
  exe?: string;
  cwd?: string;
  root?: string;
  /** `net:[4026531840]` */
  netns?: string;
  /** [fd, link target] */
  fds?: [number, string][];
  environ?: string;
  maps?: string;
}

export interface ProcView {
  takenAt: number;
  procs: Record<string, ProcEntry>;
  /** True when the view stopped at PROC_VIEW_MAX_BYTES; the rest of the processes fall back to direct reads. */
  truncated: boolean;
}

/** Bounds the answer well under the channel's message limit (core/host/frame.ts). */
export const PROC_VIEW_MAX_BYTES = 32 * 1024 * 1024;

function link(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

function text(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Reads the requested parts of every process under `root`/proc ("" = this host). */
export function takeProcView(req: ProcViewRequest, root = "", now = Date.now): ProcView {
  const parts = new Set(req.parts);
  const procs: Record<string, ProcEntry> = {};
  let bytes = 0;
  let truncated = false;
  let pids: string[];
  try {
    pids = readdirSync(`${root}/proc`).filter((n) => /^[0-9]+$/.test(n));
  } catch {
    pids = [];
  }
  for (const pid of pids) {
    const base = `${root}/proc/${pid}`;
    const e: ProcEntry = {};
    if (parts.has("links")) {
      e.exe = link(`${base}/exe`);
      e.cwd = link(`${base}/cwd`);
      e.root = link(`${base}/root`);
      e.netns = link(`${base}/ns/net`);
    }
    if (parts.has("fds")) {
      let names: string[] = [];
      try {
        names = readdirSync(`${base}/fd`);
      } catch {}
      const fds: [number, string][] = [];
      for (const fd of names) {
        const t = link(`${base}/fd/${fd}`);
        if (t !== undefined) fds.push([Number(fd), t]);
      }
      e.fds = fds;
    }
    if (parts.has("environ")) e.environ = text(`${base}/environ`);
    if (parts.has("maps")) e.maps = text(`${base}/maps`);
    bytes += entrySize(e);
    if (bytes > PROC_VIEW_MAX_BYTES) {
      truncated = true;
      break;
    }
    procs[pid] = e;
  }
  return { takenAt: now(), procs, truncated };
}

function entrySize(e: ProcEntry): number {
  let n = 64 + (e.exe?.length ?? 0) + (e.cwd?.length ?? 0) + (e.root?.length ?? 0) + (e.netns?.length ?? 0);
  for (const [, t] of e.fds ?? []) n += 16 + t.length;
  return n + (e.environ?.length ?? 0) + (e.maps?.length ?? 0);
}
