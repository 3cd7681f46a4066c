/**
 * Account-activity tables: shell history, login history (wtmp), SSH
 * authorized keys, sudoers rules and set-uid binaries, read from the files
 * osquery reads on Linux. Missing files (a user without history, a host
 * without wtmp) are simply no rows.
 */
import { lstatSync } from "node:fs";
import type { GenContext, Row, TableDef } from "./context.ts";
import { homes, listDir, readBytes, readText } from "./read.ts";
import { B, I, T, table } from "./schema.ts";
import { UTMP_RECORD_SIZE } from "./system.ts";

const HISTORY_FILES = [".bash_history", ".zsh_history", ".zhistory", ".history", ".sh_history"];

/**
 * Lines of one history file: bash's `#<epoch>` timestamp lines date the next
 * command, zsh's extended format is `: <epoch>:<duration>;<command>`.
 */
export function parseShellHistory(text: string, uid: number, file: string): Row[] {
  const rows: Row[] = [];
  let stamp = 0;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const bash = /^#(\d{9,11})$/.exec(line);
    if (bash) {
      stamp = Number(bash[1]);
      continue;
    }
    const zsh = /^: (\d+):\d+;(.*)$/.exec(line);
    rows.push({
      uid,
      time: zsh ? Number(zsh[1]) : stamp,
      command: zsh ? zsh[2]! : line,
      history_file: file,
    });
    stamp = 0;
  }
  return rows;
}

export function genShellHistory(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const h of homes(ctx.root)) {
    for (const name of HISTORY_FILES) {
      const file = `${h.directory}/${name}`;
      const text = readText(`${ctx.root}${file}`);
      if (text !== undefined) rows.push(...parseShellHistory(text, h.uid, file));
    }
  }
  return rows;
}

const UT_TYPE_NAMES: Record<number, string> = {
  1: "run-level",
  2: "boot-time",
  3: "new-time",
  4: "old-time",
  5: "init-process",
  6: "login-process",
  7: "user-process",
  8: "dead-process",
};

const c = (b: Buffer, start: number, len: number) => {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return (nul < 0 ? s : s.subarray(0, nul)).toString("utf8");
};

/** wtmp records of logins and logouts (USER_PROCESS, DEAD_PROCESS) and boots, as osquery's `last` keeps them. */
export function parseWtmp(bytes: Buffer): Row[] {
  const rows: Row[] = [];
  for (let off = 0; off + UTMP_RECORD_SIZE <= bytes.length; off += UTMP_RECORD_SIZE) {
    const type = bytes.readInt16LE(off);
    if (type !== 7 && type !== 8 && type !== 2) continue;
    rows.push({
      username: c(bytes, off + 44, 32),
      tty: c(bytes, off + 8, 32),
      pid: bytes.readInt32LE(off + 4),
      type,
      type_name: UT_TYPE_NAMES[type] ?? "",
      time: bytes.readInt32LE(off + 340),
      host: c(bytes, off + 76, 256),
    });
  }
  return rows;
}

export function genLast(ctx: GenContext): Row[] {
  const bytes = readBytes(`${ctx.root}/var/log/wtmp`);
  return bytes ? parseWtmp(bytes) : [];
}

/** One authorized_keys line: `[options] type base64 [comment]`; options may hold quoted spaces. */
export function parseAuthorizedKey(
  line: string,
): { options: string; algorithm: string; key: string; comment: string } | undefined {
  const m = /^((?:[^\s"]|"[^"]*")*?\s+)?((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+([A-Za-z0-9+/=]+)\s*(.*)$/.exec(
    line.trim(),
  );
  if (!m || line.trim().startsWith("#")) return undefined;
  return { options: (m[1] ?? "").trim(), algorithm: m[2]!, key: m[3]!, comment: m[4]!.trim() };
}

export function genAuthorizedKeys(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  for (const h of homes(ctx.root)) {
    for (const name of ["authorized_keys", "authorized_keys2"]) {
      const file = `${h.directory}/.ssh/${name}`;
      for (const line of (readText(`${ctx.root}${file}`) ?? "").split("\n")) {
        const k = parseAuthorizedKey(line);
        if (k) rows.push({ uid: h.uid, ...k, key_file: file });
      }
    }
  }
  return rows;
}

/** sudoers rules, following `#includedir`/`@includedir` and `#include` as sudo does (depth-limited). */
export function genSudoers(ctx: GenContext): Row[] {
  const rows: Row[] = [];
  const visit = (file: string, depth: number) => {
    if (depth > 8) return;
    const text = readText(`${ctx.root}${file}`);
    if (text === undefined) return;
    let pending = "";
    for (const raw of text.split("\n")) {
      const line = pending + raw.trim();
      if (line.endsWith("\\")) {
        pending = `${line.slice(0, -1).trimEnd()} `;
        continue;
      }
      pending = "";
      const inc = /^[#@](includedir|include)\s+(\S+)/.exec(line);
      if (inc) {
        rows.push({ source: file, header: `${line[0]}${inc[1]}`, rule_details: inc[2]! });
        if (inc[1] === "includedir") {
          // sudo skips names ending in ~ or containing a dot.
          for (const n of listDir(`${ctx.root}${inc[2]}`))
            if (!n.endsWith("~") && !n.includes(".")) visit(`${inc[2]}/${n}`, depth + 1);
        } else visit(inc[2]!, depth + 1);
        continue;
      }
      if (!line || line.startsWith("#")) continue;
      const sp = line.search(/\s/);
      rows.push({
        source: file,
        header: sp < 0 ? line : line.slice(0, sp),
        rule_details: sp < 0 ? "" : line.slice(sp).trim(),
      });
    }
  };
  visit("/etc/sudoers", 0);
  return rows;
}

/** The directories osquery's suid_bin searches (its kSuidBinSearchPaths on Linux, not recursive). */
export const SUID_SEARCH_DIRS = [
  "/bin",
  "/sbin",
  "/usr/bin",
  "/usr/sbin",
  "/usr/local/bin",
  "/usr/local/sbin",
  "/tmp",
];

function names(root: string, file: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of (readText(`${root}${file}`) ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && !m.has(Number(f[2]))) m.set(Number(f[2]), f[0]!);
  }
  return m;
}

export function genSuidBin(ctx: GenContext): Row[] {
  const users = names(ctx.root, "/etc/passwd");
  const groups = names(ctx.root, "/etc/group");
  const rows: Row[] = [];
  const seen = new Set<string>();
  for (const dir of SUID_SEARCH_DIRS) {
    for (const n of listDir(`${ctx.root}${dir}`, true)) {
      const path = `${dir}/${n}`;
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(`${ctx.root}${path}`);
      } catch {
        continue;
      }
      // Regular files only: /bin and /sbin are often symlinks to /usr, which is listed once.
      if (!st.isFile() || !(st.mode & 0o6000) || seen.has(`${st.dev}:${st.ino}`)) continue;
      seen.add(`${st.dev}:${st.ino}`);
      rows.push({
        path,
        username: users.get(st.uid) ?? String(st.uid),
        groupname: groups.get(st.gid) ?? String(st.gid),
        permissions: `${st.mode & 0o4000 ? "S" : ""}${st.mode & 0o2000 ? "G" : ""}`,
      });
    }
  }
  return rows;
}

export const ACCOUNT_TABLES: TableDef[] = [
  {
    schema: table("shell_history", "A line-delimited (command) table of per-user .*_history data.", [
      ["uid", B],
      ["time", I],
      ["command", T],
      ["history_file", T],
    ]),
    gen: genShellHistory,
  },
  {
    schema: table("last", "System logins and logouts.", [
      ["username", T],
      ["tty", T],
      ["pid", I],
      ["type", I],
      ["type_name", T],
      ["time", I],
      ["host", T],
    ]),
    gen: genLast,
  },
  {
    schema: table("authorized_keys", "A line-delimited authorized_keys table.", [
      ["uid", B],
      ["algorithm", T],
      ["key", T],
      ["options", T],
      ["comment", T],
      ["key_file", T],
    ]),
    gen: genAuthorizedKeys,
  },
  {
    schema: table("sudoers", "Rules for running commands as other users via sudo.", [
      ["source", T],
      ["header", T],
      ["rule_details", T],
    ]),
    gen: genSudoers,
  },
  {
    schema: table("suid_bin", "suid binaries in common locations.", [
      ["path", T],
      ["username", T],
      ["groupname", T],
      ["permissions", T],
    ]),
    gen: genSuidBin,
  },
];
