/**
 * `agent install` and `agent uninstall`, minus the command line: user,
 * directories, binary, config, trust, unit; then, on a live systemd host
 * only, enable + start + health check. Everything is idempotent — the report
 * lists what changed, and a second run lists nothing.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import type { RemoveIncompatible } from "../cli/agent/session.ts";
import { parseConfig } from "../config.ts";
import { InstallError } from "../errors.ts";
import { applyEntries, type Change } from "./apply.ts";
import { agentBinary } from "./binary.ts";
import { inRoot, LAYOUT } from "./layout.ts";
import { planInstall } from "./plan.ts";
import { disableAndStop, enableAndStart, systemdIsPid1 } from "./systemd.ts";
import { ensureSystemUser, removeSystemUser } from "./users.ts";

export interface InstallOptions {
  root: string;
  repo?: string;
  group?: string;
  trust?: string;
  tenantToken?: string;
  binary?: string;
  dryRun: boolean;
  /** The incompatible-software pass (CRT) to run before installing; the CLI passes the wired one. */
  removeIncompatible?: RemoveIncompatible;
}

export interface InstallReport {
  root: string;
  dryRun: boolean;
  binary: { kind: string; source: string; bytes: number };
  user: { name: string; created: boolean };
  changes: Change[];
  /** "started" (healthy), or why the service was not activated. */
  service: { state: "started" | "skipped"; reason?: string; ms?: number };
  /** The CRT pass's report (--remove-incompatible only). */
  incompatible?: Record<string, unknown>;
}

function readInput(path: string | undefined, what: string): Uint8Array | undefined {
  if (path === undefined) return undefined;
  const abs = resolve(path);
  if (!existsSync(abs)) throw new InstallError("INST_INPUT", `${abs}: ${what} not found`, { file: abs });
  return readFileSync(abs);
}

function existingConfig(root: string): Record<string, unknown> | null {
  const file = inRoot(root, LAYOUT.config);
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new InstallError(
      "INST_CONFIG",
      `${file}: existing config is not valid JSON (${(e as Error).message}); fix or remove it`,
      {
        file,
      },
    );
  }
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new InstallError(
      "INST_NOT_ROOT",
      "agent install/uninstall must run as root (owners and modes are part of the install)",
    );
  }
}

export async function install(o: InstallOptions): Promise<InstallReport> {
  requireRoot();
  const root = resolve(o.root);
  const trustPem = readInput(o.trust, "trust file");
  const tenantToken = readInput(o.tenantToken, "tenant token file");
  if (!trustPem && !existsSync(inRoot(root, LAYOUT.trust))) {
    throw new InstallError(
      "INST_NO_TRUST",
      `no --trust given and ${inRoot(root, LAYOUT.trust)} does not exist; the agent cannot verify content without it`,
    );
  }
  const bin = agentBinary(o.binary);
  const incompatible = o.removeIncompatible ? await runRemoval(root, o, o.removeIncompatible) : undefined;
  const { user, changed: userCreated } = ensureSystemUser(root, o.dryRun);
  const entries = planInstall({
    binary: bin.bytes,
    existingConfig: existingConfig(root),
    repo: o.repo,
    group: o.group,
    trustPem,
    tenantToken,
    user,
  });
  const changes = applyEntries(root, entries, o.dryRun);
  if (userCreated)
    changes.unshift({ path: "/etc/passwd", action: "create", detail: `system user ${LAYOUT.user}` });
  const report: InstallReport = {
    root,
    dryRun: o.dryRun,
    binary: { kind: bin.kind, source: bin.source, bytes: bin.bytes.length },
    user: { name: LAYOUT.user, created: userCreated },
    changes,
    service: { state: "skipped" },
    ...(incompatible ? { incompatible } : {}),
  };
  if (root !== "/") report.service.reason = "--root is not /: nothing to start";
  else if (!systemdIsPid1()) report.service.reason = "systemd is not PID 1 on this host";
  else if (o.dryRun) report.service.reason = "--dry-run";
  else report.service = { state: "started", ...(await enableAndStart()) };
  return report;
}

/**
 * CRT runs first, on the running system (it calls this host's apt-get and
 * systemctl, also with --root: the image is built on this host), from the
 * repo/group/trust of the flags or the config already installed. A removal
 * that failed or was refused stops the install: the agent does not go in
 * beside software known to break it.
 */
async function runRemoval(root: string, o: InstallOptions, run: RemoveIncompatible) {
  const existing = parseConfig(existingConfig(root) ?? {}, inRoot(root, LAYOUT.config));
  const trust = o.trust ? resolve(o.trust) : inRoot(root, LAYOUT.trust);
  const report = await run({
    repo: o.repo ?? existing.update.repo,
    group: o.group ?? existing.update.group,
    trust,
    dryRun: o.dryRun,
  });
  if (!report.ok && !o.dryRun) {
    throw new InstallError(
      "INST_INCOMPATIBLE",
      `incompatible software could not be removed; nothing was installed: ${failures(report)}`,
      { details: report },
    );
  }
  return report;
}

/** "RULE: state kind target (why)" for every action that did not end done or not-present. */
function failures(report: Record<string, unknown>): string {
  type F = {
    rule: string;
    actions: {
      state: string;
      action: Record<string, string>;
      error?: string;
      refusal?: { why: string; rule: string };
    }[];
  };
  const out: string[] = [];
  for (const f of (report.findings as F[] | undefined) ?? []) {
    for (const a of f.actions) {
      if (a.state === "done" || a.state === "not-present") continue;
      const target = a.action.package ?? a.action.unit ?? "";
      out.push(
        `${f.rule}: ${a.state} ${a.action.kind} ${target} (${a.error ?? (a.refusal ? `${a.refusal.why}, ${a.refusal.rule}` : "")})`,
      );
    }
  }
  return out.join("; ") || "see details";
}

export interface UninstallReport {
  root: string;
  removed: string[];
  keptState: boolean;
}

export function uninstall(o: { root: string; keepState: boolean }): UninstallReport {
  requireRoot();
  const root = resolve(o.root);
  if (root === "/" && systemdIsPid1()) disableAndStop();
  const removed: string[] = [];
  const paths = [LAYOUT.unit, LAYOUT.optDir, LAYOUT.etcDir, ...(o.keepState ? [] : [LAYOUT.stateDir])];
  for (const p of paths) {
    const real = inRoot(root, p);
    if (!existsSync(real)) continue;
    rmSync(real, { recursive: true, force: true });
    removed.push(p);
  }
  // The user owns host work dirs under the state dir; keep it while that state is kept.
  if (!o.keepState && removeSystemUser(root)) removed.push(`user ${LAYOUT.user}`);
  return { root, removed, keptState: o.keepState };
}
