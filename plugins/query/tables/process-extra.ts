/**
 * Per-process tables beyond `processes`: open files, environment and memory
 * maps, from /proc/<pid>/{fd,environ,maps} as osquery reads them on Linux.
 * A process that exits mid-scan or whose files we may not read is skipped.
 */
import type { GenContext, Row, TableDef } from "./context.ts";
import { listPids } from "./proc.ts";
import { procSource } from "./proc-source.ts";
import { B, I, T, table } from "./schema.ts";

export function genProcessOpenFiles(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  const src = procSource(ctx);
  for (const pid of listPids(ctx.root)) {
    for (const [fd, target] of src.fds(pid).sort((a, b) => a[0] - b[0])) {
      // Sockets belong to process_open_sockets, as in osquery.
      if (target.startsWith("socket:")) continue;
      rows.push({ pid: Number(pid), fd, path: target });
    }
  }
  return rows;
}

export function genProcessEnvs(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  const src = procSource(ctx);
  for (const pid of listPids(ctx.root)) {
    const text = src.environ(pid);
    if (!text) continue;
    for (const entry of text.split("\0")) {
      const i = entry.indexOf("=");
      if (i <= 0) continue;
      rows.push({ pid: Number(pid), key: entry.slice(0, i), value: entry.slice(i + 1) });
    }
  }
  return rows;
}

/** One /proc/<pid>/maps line: `start-end perms offset dev inode [path]`. */
export function parseMapsLine(pid: number, line: string): Row | undefined {
  const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+([0-9a-f]+)\s+(\S+)\s+(\d+)\s*(.*)$/.exec(line);
  if (!m) return undefined;
  return {
    pid,
    start: `0x${m[1]}`,
    end: `0x${m[2]}`,
    permissions: m[3]!,
    offset: Number.parseInt(m[4]!, 16),
    device: m[5]!,
    inode: Number(m[6]),
    path: m[7]!.trim(),
    // osquery: a mapping with no backing inode (heap, stack, vdso, anonymous) is pseudo.
    pseudo: m[6] === "0" ? 1 : 0,
  };
}

export function genProcessMemoryMap(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  const src = procSource(ctx);
  for (const pid of listPids(ctx.root)) {
    for (const line of (src.maps(pid) ?? "").split("\n")) {
      const r = parseMapsLine(Number(pid), line);
      if (r) rows.push(r);
    }
  }
  return rows;
}

export const PROCESS_EXTRA_TABLES: TableDef[] = [
  {
    schema: table("process_open_files", "File descriptors for each process.", [
      ["pid", B],
      ["fd", B],
      ["path", T],
    ]),
    gen: genProcessOpenFiles,
  },
  {
    schema: table("process_envs", "A key/value table of environment variables for each process.", [
      ["pid", I],
      ["key", T],
      ["value", T],
    ]),
    gen: genProcessEnvs,
  },
  {
    schema: table("process_memory_map", "Process memory mapped files and pseudo device/regions.", [
      ["pid", I],
      ["start", T],
      ["end", T],
      ["permissions", T],
      ["offset", B],
      ["device", T],
      ["inode", I],
      ["path", T],
      ["pseudo", I],
    ]),
    gen: genProcessMemoryMap,
  },
];
