/**
 * Where a host group finds its content keyring: `content-keys.json` in the
 * group's private work directory (`STATE/hosts/<group>/`, the directory the
 * host hands a handler as `caps.workDir`). Each Lua group has its own copy,
 * readable only by the user that group's host runs as, because a host can
 * read nothing outside its declared paths and work directory.
 *
 * `agent rules install-key FILE` provisions it (docs/rules.md, "Content keys").
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { atomicWriteFile } from "../../../core/fsutil.ts";
import { shareWithAgentUser } from "../../../core/host/sandbox.ts";
import { builtinGroups } from "../../groups.ts";
import { Keyring } from "./crypto.ts";
import { KEYRING_FILE } from "./format.ts";

/** Host groups that run Lua content and so need the keyring. */
export const LUA_GROUPS = ["behavior", "repair", "appfeed"] as const;

export function groupWorkDir(stateDir: string, group: string): string {
  return join(stateDir, "hosts", group);
}

export function keyringPath(workDir: string): string {
  return join(workDir, KEYRING_FILE);
}

export function loadKeyring(workDir: string): Keyring {
  return Keyring.load(keyringPath(workDir));
}

/**
 * Validates a keyring file and installs it into every Lua group's work
 * directory, mode 0600. When the agent runs as root, a group whose host
 * drops to the unprivileged user (`hosts.user`) gets a copy owned by root
 * and that user's group, mode 0640: readable by the host whether it runs
 * as that user or (when its work directory is unreachable for it) as root
 * without capabilities, and by nobody else. Returns the paths.
 */
export function installKeyring(
  stateDir: string,
  sourceFile: string,
  opts: { user?: string; groups?: readonly string[] } = {},
): string[] {
  const text = readFileSync(sourceFile, "utf8");
  Keyring.parse(JSON.parse(text), sourceFile);
  const root = process.getuid?.() === 0;
  const installed: string[] = [];
  for (const group of opts.groups ?? LUA_GROUPS) {
    const dir = groupWorkDir(stateDir, group);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const target = keyringPath(dir);
    const runsAs = builtinGroups.find((g) => g.name === group)?.runAs ?? "agent";
    const shared = root && runsAs === "agent";
    atomicWriteFile(target, text, shared ? 0o640 : 0o600);
    if (shared) shareWithAgentUser(target, opts.user);
    installed.push(target);
  }
  return installed;
}
