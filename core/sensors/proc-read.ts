/**
 * Reads what /proc says about one process, as fast as possible after the
 * kernel announced its exec (the reader thread calls this before it reads
 * the next datagram). A process that already exited is a zombie: status
 * still gives name, ppid and uid, but cmdline, exe and cwd are gone, which
 * the record says with `complete: false` rather than inventing them.
 */
import { closeSync, openSync, readFileSync, readlinkSync } from "node:fs";

export const MAX_CMDLINE = 4096;

export interface ProcDetails {
  pid: number;
  ppid: number;
  uid: number;
  name: string;
  exe: string;
  cmdline: string;
  cwd: string;
  /** Start time in clock ticks since boot (tells a reused pid apart). */
  startTicks: number;
  complete: boolean;
  /** An open fd on the executable (only when asked for): hashing it later cannot race the exit. */
  exeFd?: number;
}

export function readProc(
  pid: number,
  opts: { procRoot?: string; openExe?: boolean } = {},
): ProcDetails | null {
  const dir = `${opts.procRoot ?? "/proc"}/${pid}`;
  let exeFd: number | undefined;
  if (opts.openExe) {
    try {
      exeFd = openSync(`${dir}/exe`, "r");
    } catch {
      exeFd = undefined;
    }
  }
  let cmdline = "";
  let exe = "";
  let cwd = "";
  try {
    cmdline = readFileSync(`${dir}/cmdline`).subarray(0, MAX_CMDLINE).toString("utf8");
    cmdline = cmdline.split("\0").filter(Boolean).join(" ");
  } catch {}
  try {
    exe = readlinkSync(`${dir}/exe`);
  } catch {}
  try {
    cwd = readlinkSync(`${dir}/cwd`);
  } catch {}
  let status: string;
  let stat: string;
  try {
    status = readFileSync(`${dir}/status`, "utf8");
    stat = readFileSync(`${dir}/stat`, "utf8");
  } catch {
    if (exeFd !== undefined) closeSync(exeFd);
    return null;
  }
  const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, "m"))?.[1]?.trim();
  const name = field("Name") ?? "";
  // stat's command name may contain spaces and parentheses: count fields from the last ')'.
  const startTicks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? 0);
  return {
    pid,
    ppid: Number(field("PPid") ?? 0),
    uid: Number((field("Uid") ?? "0").split(/\s+/)[0]),
    name,
    exe,
    cmdline,
    cwd,
    startTicks,
    complete: exe !== "" && cmdline !== "",
    ...(exeFd !== undefined ? { exeFd } : {}),
  };
}
