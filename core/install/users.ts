/**
 * The `outpost` system user that `runAs: agent` host groups drop to.
 * On the real root this is `useradd --system` (it also updates shadow and
 * nscd); inside `--root DIR` it edits DIR/etc/passwd and DIR/etc/group
 * only — never the running system's files — choosing a free system id
 * (100–999) from those files, as useradd would.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { InstallError } from "../errors.ts";
import { inRoot, LAYOUT } from "./layout.ts";

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

const read = (path: string): string[][] =>
  existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.split(":"))
    : [];

/** The user as `root`'s passwd file knows it, or null. */
export function findUser(root: string, name: string): SystemUser | null {
  const u = read(inRoot(root, "/etc/passwd")).find((f) => f[0] === name);
  return u ? { name, uid: Number(u[2]), gid: Number(u[3]) } : null;
}

/** Lowest id in the system range free in both files (useradd --system counts down; any free one works). */
export function freeSystemId(passwd: string[][], group: string[][]): number {
  const used = new Set([...passwd.map((f) => Number(f[2])), ...group.map((f) => Number(f[2]))]);
  for (let id = 999; id >= 100; id--) if (!used.has(id)) return id;
  throw new InstallError("INST_NO_FREE_ID", "no free system user id between 100 and 999");
}

/** Creates the user (and its group) if missing; returns it and whether anything changed. */
export function ensureSystemUser(root: string, dryRun: boolean): { user: SystemUser; changed: boolean } {
  const name = LAYOUT.user;
  const have = findUser(root, name);
  if (have) return { user: have, changed: false };
  if (dryRun) return { user: { name, uid: -1, gid: -1 }, changed: true };
  if (root === "/") {
    const run = Bun.spawnSync(
      [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        LAYOUT.stateDir,
        "--shell",
        "/usr/sbin/nologin",
        name,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (run.exitCode !== 0) {
      throw new InstallError("INST_USER", `useradd ${name} failed: ${run.stderr.toString().trim()}`);
    }
  } else {
    const passwdFile = inRoot(root, "/etc/passwd");
    const groupFile = inRoot(root, "/etc/group");
    const id = freeSystemId(read(passwdFile), read(groupFile));
    mkdirSync(dirname(passwdFile), { recursive: true });
    append(groupFile, `${name}:x:${id}:\n`);
    append(passwdFile, `${name}:x:${id}:${id}:Outpost agent hosts:${LAYOUT.stateDir}:/usr/sbin/nologin\n`);
  }
  const user = findUser(root, name);
  if (!user) throw new InstallError("INST_USER", `${name} was not created in ${inRoot(root, "/etc/passwd")}`);
  return { user, changed: true };
}

/** Removes the user inside `root` (uninstall). */
export function removeSystemUser(root: string): boolean {
  const name = LAYOUT.user;
  if (!findUser(root, name)) return false;
  if (root === "/") {
    const r = Bun.spawnSync(["userdel", name], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0)
      throw new InstallError("INST_USER", `userdel ${name} failed: ${r.stderr.toString().trim()}`);
    return true;
  }
  for (const f of ["/etc/passwd", "/etc/group"]) {
    const path = inRoot(root, f);
    if (!existsSync(path)) continue;
    const kept = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.split(":")[0] !== name);
    writeFileSync(path, kept.join("\n"));
  }
  return true;
}

function append(path: string, line: string): void {
  const before = existsSync(path) ? readFileSync(path, "utf8") : "";
  writeFileSync(path, before === "" || before.endsWith("\n") ? before + line : `${before}\n${line}`, {
    mode: 0o644,
  });
}
