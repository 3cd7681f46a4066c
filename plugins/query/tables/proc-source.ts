/**
 * Where the per-process tables read links, descriptors, environments and
 * memory maps: the supervisor's process view when the engine's host passed
 * one (a sandboxed host cannot read these for processes outside its
 * Landlock domain — core/host/proc-view.ts), else /proc directly. A process
 * born after the view was taken is read directly; if that is denied its
 * cells stay empty, as for a process that exited mid-scan.
 */
import { readdirSync } from "node:fs";
import type { ProcViewPart } from "../../../core/host/proc-view.ts";
import type { GenContext } from "./context.ts";
import { readLink, readText } from "./read.ts";

export type ProcLinkName = "exe" | "cwd" | "root" | "ns/net";

export interface ProcSource {
  link(pid: string, name: ProcLinkName): string | undefined;
  /** [fd, link target] of every open descriptor. */
  fds(pid: string): [number, string][];
  environ(pid: string): string | undefined;
  maps(pid: string): string | undefined;
}

const FIELD: Record<ProcLinkName, "exe" | "cwd" | "root" | "netns"> = {
  exe: "exe",
  cwd: "cwd",
  root: "root",
  "ns/net": "netns",
};

export function procSource(ctx: Pick<GenContext, "root" | "introspection">): ProcSource {
  const view = ctx.introspection?.procView?.procs;
  const base = (pid: string) => `${ctx.root}/proc/${pid}`;
  return {
    link(pid, name) {
      const v = view?.[pid]?.[FIELD[name]];
      return v !== undefined ? v : readLink(`${base(pid)}/${name}`);
    },
    fds(pid) {
      const v = view?.[pid]?.fds;
      if (v) return v;
      let names: string[];
      try {
        names = readdirSync(`${base(pid)}/fd`);
      } catch {
        return [];
      }
      const out: [number, string][] = [];
      for (const fd of names) {
        const t = readLink(`${base(pid)}/fd/${fd}`);
        if (t !== undefined) out.push([Number(fd), t]);
      }
      return out;
    },
    environ(pid) {
      return view?.[pid]?.environ ?? readText(`${base(pid)}/environ`);
    },
    maps(pid) {
      return view?.[pid]?.maps ?? readText(`${base(pid)}/maps`);
    },
  };
}

/** Tables that read what the view supplies, and which parts each needs. */
const TABLE_PARTS: Record<string, ProcViewPart[]> = {
  processes: ["links"],
  process_open_sockets: ["links", "fds"],
  listening_ports: ["links", "fds"],
  process_open_files: ["fds"],
  process_envs: ["environ"],
  process_memory_map: ["maps"],
};

/**
 * Columns of `processes` read through links (path and on_disk from exe, cwd, root). A query of
 * `processes` that names none of them and no `*` (or a NATURAL join, whose columns go unnamed)
 * needs no view: `SELECT pid, name FROM processes` costs the supervisor no walk of every process.
 */
const PROCESSES_LINK_COLUMNS = ["path", "on_disk", "cwd", "root"];

/** The view parts a query needs, from the table and column names it mentions ([] = none: no view is taken). */
export function procViewParts(sql: string): ProcViewPart[] {
  const words = new Set(sql.toLowerCase().match(/[a-z_]+/g) ?? []);
  const everyColumn = sql.includes("*") || words.has("natural");
  const parts = new Set<ProcViewPart>();
  for (const word of words) {
    if (word === "processes" && !everyColumn && !PROCESSES_LINK_COLUMNS.some((c) => words.has(c))) continue;
    for (const p of TABLE_PARTS[word] ?? []) parts.add(p);
  }
  return [...parts].sort();
}
