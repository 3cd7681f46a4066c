/**
 * What a process tree costs, read from /proc: proportional set size per
 * process broken down by where the pages come from, CPU time, and the
 * tree under a pid. For bench/footprint.ts; PSS splits each shared page
 * between its users, so the sum over a tree is what the tree adds to the
 * machine (RSS would count the executable's text once per process).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** KiB of proportional set size by origin. */
export interface PssBreakdown {
  pid: number;
  /** Whole process (sum of the rest). */
  pss: number;
  /** Pages of the process's own executable (the Bun runtime and the embedded bundle). */
  binary: number;
  /** Anonymous memory: the JS heap, malloc arenas, stacks. */
  anon: number;
  /** Other file mappings: shared libraries, mmapped data files, deleted temp files. */
  files: number;
  /** Private (unshared) pages of the whole process, clean + dirty: what stopping it gives back. */
  uss: number;
  rss: number;
}

const HEADER = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/;

/** Parses /proc/PID/smaps text; `exe` is the path the executable mapping carries. */
export function parseSmaps(text: string, exe: string, pid = 0): PssBreakdown {
  const out: PssBreakdown = { pid, pss: 0, binary: 0, anon: 0, files: 0, uss: 0, rss: 0 };
  let kind: "binary" | "anon" | "files" = "anon";
  for (const line of text.split("\n")) {
    const h = HEADER.exec(line);
    if (h) {
      const path = h[1]!.replace(/ \(deleted\)$/, "");
      kind = path === exe ? "binary" : path.startsWith("/") ? "files" : "anon";
      continue;
    }
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    if (key !== "Pss" && key !== "Rss" && key !== "Private_Clean" && key !== "Private_Dirty") continue;
    const kb = Number.parseInt(line.slice(colon + 1), 10);
    if (!Number.isFinite(kb)) continue;
    if (key === "Pss") {
      out.pss += kb;
      out[kind] += kb;
    } else if (key === "Rss") out.rss += kb;
    else out.uss += kb;
  }
  return out;
}

/** The breakdown of a live process, or null once it is gone. */
export function pssOf(pid: number): PssBreakdown | null {
  try {
    const exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
    return parseSmaps(readFileSync(`/proc/${pid}/smaps`, "utf8"), exe, pid);
  } catch {
    return null;
  }
}

/** utime + stime in clock ticks (USER_HZ, 100 on Linux); 0 once gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/**
 * CPU time of each thread of `pid` in nanoseconds (/proc/PID/task/TID/schedstat, the scheduler's
 * own count). utime + stime are printed in whole ticks, so a window over nine processes is off by
 * up to nine ticks — 0.15 % of a core over 60 s, a third of the idle goal — where this is exact.
 */
export function threadCpuNanos(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      out.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/**
 * CPU used by a process tree over a window, from per-thread scheduler counts sampled every
 * `sample()`: a thread seen first at the window's start counts from there, a thread born later from
 * zero, and a thread that ends keeps what its last sample showed (at most one sampling interval lost).
 */
export class TreeCpuMeter {
  private readonly first = new Map<string, number>();
  private readonly last = new Map<string, number>();
  private readonly byPid = new Map<string, number>();

  constructor(private readonly root: () => number[]) {
    this.read(true);
  }

  sample(): void {
    this.read(false);
  }

  private read(start: boolean): void {
    for (const pid of this.root()) {
      for (const [tid, ns] of threadCpuNanos(pid)) {
        const key = `${pid}/${tid}`;
        if (!this.first.has(key)) this.first.set(key, start ? ns : 0);
        this.last.set(key, ns);
        this.byPid.set(key, pid);
      }
    }
  }

  /** Nanoseconds used in the window, in total and per process. */
  used(): { total: number; perPid: Map<number, number> } {
    const perPid = new Map<number, number>();
    let total = 0;
    for (const [key, ns] of this.last) {
      const d = ns - (this.first.get(key) ?? 0);
      total += d;
      const pid = this.byPid.get(key)!;
      perPid.set(pid, (perPid.get(pid) ?? 0) + d);
    }
    return { total, perPid };
  }
}

/** `pid` and every descendant, parents before children. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(n));
      children.set(ppid, list);
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** The command line of a process as its argv, [] once gone. */
export function argvOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}
