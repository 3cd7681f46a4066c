/**
 * What a CRT rule may never touch. Pure, I/O-free checks, each citing its
 * rule id; run at pack (contentctl), at validate (agent, before install) and
 * again at run time against the live package database (Priority/Essential
 * are only known there). A refusal names the rule and the target.
 *
 *   CRT-G1  no action or detector targets the agent itself (its packages,
 *           unit, install/config/state paths, its processes)
 *   CRT-G2  no action removes a package on the essential list (libc6,
 *           systemd, openssh-server, dpkg, apt, …): removing them bricks or
 *           locks out the host, which no compatibility fix is worth
 *   CRT-G3  no action removes a package the host's dpkg database marks
 *           `Essential: yes` or `Priority: required` (run time)
 *   CRT-G4  no action disables a unit the system cannot run without
 *           (ssh, systemd-*, dbus, networking)
 */
import { HandlerError } from "../../core/errors.ts";
import type { CrtAction, CrtRule } from "./format.ts";

/** The agent's own footprint (core/install/layout.ts; kept literal so this stays I/O-free and core-free). */
const AGENT_PACKAGES = /^outpost(-.*)?$/;
const AGENT_UNITS = /^outpost(@.*|-.*)?\.(service|socket|timer|path|mount)$/;
const AGENT_PATHS = [
  "/opt/outpost",
  "/etc/outpost",
  "/var/lib/outpost",
  "/etc/systemd/system/outpost.service",
];
const AGENT_PROCESSES = new Set(["agent", "outpost", "outpost-agent"]);

/** CRT-G2: removing any of these leaves a host that does not boot, cannot install, or cannot be reached. */
export const ESSENTIAL_PACKAGES: ReadonlySet<string> = new Set([
  "libc6",
  "libc-bin",
  "systemd",
  "systemd-sysv",
  "libsystemd0",
  "udev",
  "openssh-server",
  "openssh-client",
  "dpkg",
  "apt",
  "base-files",
  "base-passwd",
  "bash",
  "coreutils",
  "login",
  "passwd",
  "sudo",
  "init",
  "init-system-helpers",
  "linux-image-amd64",
  "linux-image-arm64",
  "grub-pc",
  "grub-efi-amd64",
  "util-linux",
  "mount",
  "ca-certificates",
  "dbus",
  "ifupdown",
  "netplan.io",
  "network-manager",
]);

/** CRT-G4. */
const ESSENTIAL_UNITS =
  /^(ssh|sshd|dbus|systemd-.*|networking|NetworkManager|getty@.*|serial-getty@.*)\.(service|socket)$/;

export interface Refusal {
  rule: "CRT-G1" | "CRT-G2" | "CRT-G3" | "CRT-G4";
  crtRule: string;
  target: string;
  why: string;
}

const underAgent = (p: string) =>
  AGENT_PATHS.some((a) => p === a || p.startsWith(`${a}/`) || a.startsWith(`${p}/`) || p === "/");

/** Static refusals of one rule (CRT-G1, G2, G4): the same at pack, validate and run. */
export function staticRefusals(rule: CrtRule): Refusal[] {
  const out: Refusal[] = [];
  const g1 = (target: string, why: string) => out.push({ rule: "CRT-G1", crtRule: rule.id, target, why });
  for (const p of rule.detect.packages) if (AGENT_PACKAGES.test(p)) g1(p, "detects the agent's own package");
  for (const u of rule.detect.units) if (AGENT_UNITS.test(u)) g1(u, "detects the agent's own unit");
  for (const p of rule.detect.paths)
    if (underAgent(p)) g1(p, "detects a path of the agent's own installation");
  for (const n of rule.detect.processes) if (AGENT_PROCESSES.has(n)) g1(n, "detects the agent's own process");
  for (const a of rule.actions) out.push(...actionRefusals(rule.id, a));
  return out;
}

function actionRefusals(id: string, a: CrtAction): Refusal[] {
  if (a.kind === "apt-remove") {
    if (AGENT_PACKAGES.test(a.package))
      return [{ rule: "CRT-G1", crtRule: id, target: a.package, why: "removes the agent itself" }];
    if (ESSENTIAL_PACKAGES.has(a.package))
      return [{ rule: "CRT-G2", crtRule: id, target: a.package, why: "removes an essential package" }];
    return [];
  }
  if (AGENT_UNITS.test(a.unit))
    return [{ rule: "CRT-G1", crtRule: id, target: a.unit, why: "disables the agent itself" }];
  if (ESSENTIAL_UNITS.test(a.unit))
    return [{ rule: "CRT-G4", crtRule: id, target: a.unit, why: "disables a unit the system needs" }];
  return [];
}

/** What the live package database says about a package (run time). */
export interface PackageFacts {
  installed: boolean;
  priority: string;
  essential: boolean;
}

/** CRT-G3: the host's own dpkg database marks the package as required. */
export function dpkgRefusal(id: string, pkg: string, facts: PackageFacts): Refusal | null {
  if (facts.essential)
    return { rule: "CRT-G3", crtRule: id, target: pkg, why: "dpkg marks it Essential: yes" };
  if (facts.priority === "required")
    return { rule: "CRT-G3", crtRule: id, target: pkg, why: "dpkg marks it Priority: required" };
  return null;
}

/** Throws for the first refused rule: content with one is rejected whole (pack, validate). */
export function assertSafe(rules: CrtRule[]): void {
  const refused = rules.flatMap(staticRefusals);
  const first = refused[0];
  if (first) {
    throw new HandlerError(
      first.rule === "CRT-G1" ? "CRT_TARGETS_AGENT" : "CRT_TARGETS_ESSENTIAL",
      `rules.json: rule ${first.crtRule}: ${first.target} ${first.why} (${first.rule})`,
      { file: "rules.json", details: { refusals: refused } },
    );
  }
}
