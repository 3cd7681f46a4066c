/** Tolerant readers for the newer tables: a file the host lacks (or hides) is no data, never an error. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

export function readBytes(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/** Directory entries (sorted, dot-files kept only when asked), [] when absent. */
export function listDir(path: string, dotfiles = false): string[] {
  try {
    return readdirSync(path)
      .filter((n) => dotfiles || !n.startsWith("."))
      .sort();
  } catch {
    return [];
  }
}

export function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** sysfs attribute, trimmed; "" when absent. */
export const attr = (path: string) => (readText(path) ?? "").trim();

/** Users' home directories from /etc/passwd (uid, name, home), for per-user tables. */
export function homes(root: string): { uid: number; username: string; directory: string }[] {
  const out: { uid: number; username: string; directory: string }[] = [];
  for (const line of (readText(`${root}/etc/passwd`) ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || line.startsWith("#")) continue;
    if (!f[5] || f[5] === "/" || f[5] === "/nonexistent") continue;
    out.push({ uid: Number(f[2]), username: f[0]!, directory: f[5] });
  }
  return out;
}
