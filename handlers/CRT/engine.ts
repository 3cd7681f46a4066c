/**
 * One CRT pass: detect, plan, and (unless dry run) act. Detection and the
 * plan are separated from the side effects so the plan — including every
 * refusal with its rule id — is what `--dry-run` prints and what the real
 * run executes, action for action.
 */
import type { ExecCapability } from "../../core/handler/contract.ts";
import type { CrtAction, CrtRule } from "./format.ts";
import { dpkgRefusal, type Refusal, staticRefusals } from "./guard.ts";
import type { Probe } from "./probe.ts";

export interface Matched {
  packages: string[];
  units: string[];
  paths: string[];
  processes: string[];
}

export type ActionState = "planned" | "not-present" | "refused" | "done" | "failed";

export interface PlannedAction {
  action: CrtAction;
  state: ActionState;
  refusal?: Refusal;
  /** apt-get / systemctl output tail when it failed. */
  error?: string;
}

export interface Finding {
  rule: string;
  title: string;
  reason: string;
  matched: Matched;
  actions: PlannedAction[];
}

export async function detect(rules: readonly CrtRule[], probe: Probe): Promise<Finding[]> {
  const allPackages = [
    ...new Set(
      rules.flatMap((r) => [
        ...r.detect.packages,
        ...r.actions.flatMap((a) => (a.kind === "apt-remove" ? [a.package] : [])),
      ]),
    ),
  ];
  const facts = await probe.packages(allPackages);
  const running = rules.some((r) => r.detect.processes.length > 0)
    ? probe.runningProcesses()
    : new Set<string>();
  const findings: Finding[] = [];
  for (const rule of rules) {
    const matched: Matched = {
      packages: rule.detect.packages.filter((p) => facts.get(p)?.installed),
      units: [],
      paths: rule.detect.paths.filter((p) => probe.pathExists(p)),
      processes: rule.detect.processes.filter((p) => running.has(p)),
    };
    for (const u of rule.detect.units) if (await probe.unitExists(u)) matched.units.push(u);
    if (
      matched.packages.length + matched.units.length + matched.paths.length + matched.processes.length ===
      0
    )
      continue;
    const refusals = staticRefusals(rule);
    const actions: PlannedAction[] = [];
    for (const action of rule.actions) {
      const target = action.kind === "apt-remove" ? action.package : action.unit;
      const refusal =
        refusals.find((r) => r.target === target) ??
        (action.kind === "apt-remove" && facts.get(action.package)
          ? dpkgRefusal(
              rule.id,
              action.package,
              facts.get(action.package) as NonNullable<ReturnType<typeof facts.get>>,
            )
          : null);
      if (refusal) actions.push({ action, state: "refused", refusal });
      else if (action.kind === "apt-remove" && !facts.get(action.package)?.installed)
        actions.push({ action, state: "not-present" });
      else if (action.kind === "systemctl-disable" && !(await probe.unitExists(action.unit)))
        actions.push({ action, state: "not-present" });
      else actions.push({ action, state: "planned" });
    }
    findings.push({ rule: rule.id, title: rule.title, reason: rule.reason, matched, actions });
  }
  return findings;
}

/**
 * The command one action runs, non-interactive. A removal waits up to 120 s for the dpkg lock
 * (unattended-upgrades or an administrator's apt may hold it) instead of failing at once.
 */
export function commandFor(a: CrtAction): string[] {
  return a.kind === "apt-remove"
    ? [
        "apt-get",
        "remove",
        "-y",
        "-o",
        "DPkg::Lock::Timeout=120",
        "-o",
        "Dpkg::Options::=--force-confold",
        a.package,
      ]
    : ["systemctl", "disable", "--now", a.unit];
}

/** Packages a simulated `apt-get remove` would take away (its "Remv NAME …" lines). */
export function simulatedRemovals(aptSimulateOutput: string): string[] {
  return aptSimulateOutput
    .split("\n")
    .filter((l) => l.startsWith("Remv "))
    .map((l) => (l.split(" ")[1] ?? "").replace(/:[a-z0-9]+$/, ""));
}

/**
 * A rule names one package; apt would also remove everything that depends
 * on it. The removal is simulated first and refused unless it takes exactly
 * the named package, so content can never cascade into the rest of the system.
 */
async function cascade(exec: ExecCapability, pkg: string): Promise<string | null> {
  const sim = await exec.run(["apt-get", "-s", "remove", pkg], { timeoutMs: 60_000 });
  if (sim.code !== 0) return `apt-get -s remove ${pkg} exited ${sim.code}: ${sim.stderr.trim().slice(-300)}`;
  const others = simulatedRemovals(sim.stdout).filter((p) => p !== pkg);
  return others.length > 0 ? `removing ${pkg} would also remove ${others.join(", ")}; not removed` : null;
}

/** Runs every planned action, in rule order; a failure is recorded and the pass goes on. */
export async function act(findings: Finding[], exec: ExecCapability): Promise<Finding[]> {
  for (const f of findings) {
    for (const p of f.actions) {
      if (p.state !== "planned") continue;
      const blocked = p.action.kind === "apt-remove" ? await cascade(exec, p.action.package) : null;
      if (blocked) {
        p.state = "failed";
        p.error = blocked;
        continue;
      }
      const r = await exec.run(commandFor(p.action), { timeoutMs: 300_000 });
      if (r.code === 0) p.state = "done";
      else {
        p.state = "failed";
        p.error = `${commandFor(p.action).join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-500)}`;
      }
    }
  }
  return findings;
}
