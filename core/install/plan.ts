/**
 * What an install puts where, with owners and modes: a pure function of the
 * options, the existing config (kept, so a reinstall without flags does not
 * reset it) and the agent executable's bytes.
 */
import { parseConfig } from "../config.ts";
import type { Entry, Owner } from "./apply.ts";
import { LAYOUT } from "./layout.ts";
import { renderUnit } from "./unit.ts";

export interface PlanInput {
  /** The executable (or development launcher) to put in slot A. */
  binary: Uint8Array;
  /** Parsed agent.json already in the root, if any. */
  existingConfig: Record<string, unknown> | null;
  repo?: string;
  group?: string;
  trustPem?: Uint8Array;
  tenantToken?: Uint8Array;
  /** The `outpost` user's ids (host groups' unprivileged identity). */
  user: Owner;
}

const ROOT_OWNER: Owner = { uid: 0, gid: 0 };

/** agent.json: the existing file's settings, the flags on top, the installed paths fixed. */
export function renderConfig(input: PlanInput): string {
  const base = structuredClone(input.existingConfig ?? {}) as Record<
    string,
    Record<string, unknown> | unknown
  >;
  const update = { ...((base.update as Record<string, unknown>) ?? {}) };
  if (input.repo !== undefined) update.repo = input.repo;
  if (input.group !== undefined) update.group = input.group;
  update.trust = LAYOUT.trust;
  const cfg: Record<string, unknown> = { ...base, stateDir: LAYOUT.stateDir, update };
  if (input.tenantToken)
    cfg.fleet = { ...((base.fleet as Record<string, unknown>) ?? {}), tokenFile: LAYOUT.tenantToken };
  cfg.hosts = { ...((base.hosts as Record<string, unknown>) ?? {}), user: LAYOUT.user };
  // An installed agent has its A/B slots: AgentSoftware content may switch it (docs/install.md).
  cfg.software = { enabled: true, ...((base.software as Record<string, unknown>) ?? {}) };
  // Refuse to write a config the agent would refuse to start on.
  parseConfig(cfg, LAYOUT.config);
  return `${JSON.stringify(cfg, null, 2)}\n`;
}

export function planInstall(input: PlanInput): Entry[] {
  const text = (s: string) => new TextEncoder().encode(s);
  const entries: Entry[] = [
    { kind: "dir", path: LAYOUT.optDir, mode: 0o755, ...ROOT_OWNER },
    { kind: "dir", path: LAYOUT.slotA, mode: 0o755, ...ROOT_OWNER },
    { kind: "file", path: `${LAYOUT.slotA}/agent`, mode: 0o755, content: input.binary, ...ROOT_OWNER },
    { kind: "dir", path: LAYOUT.slotB, mode: 0o755, ...ROOT_OWNER },
    { kind: "symlink", path: LAYOUT.current, target: "slot-a" },
    { kind: "dir", path: LAYOUT.etcDir, mode: 0o755, ...ROOT_OWNER },
    { kind: "file", path: LAYOUT.config, mode: 0o644, content: text(renderConfig(input)), ...ROOT_OWNER },
    // o+x only: host work dirs below are reached by the outpost user, never listed (core/host/launch.ts).
    { kind: "dir", path: LAYOUT.stateDir, mode: 0o711, ...ROOT_OWNER },
    { kind: "dir", path: "/etc/systemd/system", mode: 0o755, ...ROOT_OWNER },
    { kind: "file", path: LAYOUT.unit, mode: 0o644, content: text(renderUnit()), ...ROOT_OWNER },
  ];
  if (input.trustPem) {
    entries.push({ kind: "file", path: LAYOUT.trust, mode: 0o644, content: input.trustPem, ...ROOT_OWNER });
  }
  if (input.tenantToken) {
    // A secret: root only (the supervisor reads it; hosts never do).
    entries.push({
      kind: "file",
      path: LAYOUT.tenantToken,
      mode: 0o600,
      content: input.tenantToken,
      ...ROOT_OWNER,
    });
  }
  return entries;
}
