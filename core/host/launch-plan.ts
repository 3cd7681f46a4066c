/**
 * Everything decided before a host process is spawned: the sandbox its
 * handlers' declarations add up to (G2), whether it can drop to the agent
 * user (the program and the state dir must be reachable by it — else the
 * health board says why), its message limits, the command line with every
 * sandbox layer (sandbox.ts), the cgroup where the kernel offers one, and the
 * `init` arguments (handlers, Landlock rules) it gets once started. The
 * manager (manager.ts) spawns and supervises; this file only plans.
 */
import { join } from "node:path";
import type { HandlerManifest } from "../handler/contract.ts";
import { programBlocker, reportUidDrop } from "./health-report.ts";
import { defaultHostCommand, prepareWorkDir } from "./launch.ts";
import { type PathVars, type SandboxSpec, sandboxFor } from "./policy.ts";
import type { InitArgs } from "./protocol.ts";
import type { GroupRec, HostManagerOptions } from "./records.ts";
import {
  buildLaunch,
  type CgroupSupport,
  createHostCgroup,
  detectCgroupV2,
  findTools,
  type HostIdentity,
  type LaunchTools,
  landlockRules,
  resolveAgentIdentity,
} from "./sandbox.ts";
import { withStateView } from "./state-view.ts";

/** Found once per manager: tool paths, the agent user, cgroup v2 support. */
export interface LaunchFacts {
  tools?: LaunchTools;
  identity?: HostIdentity;
  cgroup?: CgroupSupport;
}

export interface LaunchPlan {
  spec: SandboxSpec;
  manifests: HandlerManifest[];
  workDir: string;
  supervisorUid: number;
  maxInbound: number;
  maxOutbound: number;
  /** The host's command line with every sandbox layer (also kept on the group as g.launch). */
  argv: string[];
}

/** Plans the launch of group `g` (sets g.launch and, once, g.cgroupDir or g.cgroupNote). */
export function planLaunch(
  g: GroupRec,
  policy: NonNullable<GroupRec["policy"]>,
  manifests: HandlerManifest[],
  opts: HostManagerOptions,
  pathVars: PathVars,
  facts: LaunchFacts,
): LaunchPlan {
  const spec = { ...sandboxFor(policy, manifests, pathVars), group: g.name };
  facts.tools ??= findTools();
  facts.identity ??= resolveAgentIdentity(opts.config.user);
  const supervisorUid = process.getuid?.() ?? 0;
  const wanted = supervisorUid === 0 && spec.runAs === "agent";
  // The program too: a host that cannot even exec itself as the unprivileged user would crash-loop.
  const programBlocked = wanted
    ? programBlocker(facts.identity, process.execPath, pathVars.installDir)
    : undefined;
  const { dir: workDir, unreachable: stateBlocked } = prepareWorkDir(
    opts.workRoot?.() ?? join(opts.stateDir, "hosts"),
    g.name,
    wanted && !programBlocked ? facts.identity : null,
    opts.log,
  );
  const unreachable = programBlocked ?? stateBlocked;
  reportUidDrop(opts.health, {
    group: g.name,
    wanted,
    unreachable,
    user: facts.identity.user,
    stateDir: opts.stateDir,
  });
  const maxPackage = Math.max(0, ...manifests.map((m) => m.maxPackageBytes));
  const maxOutbound = Math.max(opts.config.maxMessageBytes, maxPackage + 1024 * 1024);
  const maxInbound = opts.config.maxMessageBytes;
  const base = (opts.command ?? defaultHostCommand)(g.name, {
    maxInbound: maxOutbound,
    maxOutbound: maxInbound,
  });
  const launch = buildLaunch({
    base,
    spec,
    supervisorUid,
    identity: facts.identity,
    cpuSeconds: Math.max(1, g.limits.cpuSeconds),
    tools: facts.tools,
    noUidDrop: unreachable,
  });
  withStateView(launch, { spec, stateDir: opts.stateDir, workDir, supervisorUid });
  g.launch = launch;
  if (g.cgroupDir === undefined) {
    facts.cgroup ??= detectCgroupV2();
    if (facts.cgroup.available && facts.cgroup.parent) {
      try {
        g.cgroupDir = createHostCgroup(facts.cgroup.parent, g.name, g.limits.memoryBytes);
      } catch (e) {
        g.cgroupNote = `cgroup v2 set-up failed (${(e as Error).message}); RSS watchdog enforces the limit`;
      }
    } else {
      g.cgroupNote = `${facts.cgroup.reason}; RSS watchdog enforces the limit`;
    }
  }
  return { spec, manifests, workDir, supervisorUid, maxInbound, maxOutbound, argv: launch.argv };
}

/** What `init` tells a started host: its handlers, their modules and manifests, and its Landlock rules. */
export function initArgsFor(
  g: GroupRec,
  plan: LaunchPlan,
  opts: HostManagerOptions,
  pathVars: PathVars,
): InitArgs {
  return {
    group: g.name,
    workDir: plan.workDir,
    handlers: g.types.map((type, i) => ({
      type,
      module: opts.registry.moduleOf(type),
      manifest: plan.manifests[i]!,
    })),
    pathVars,
    callTimeoutMs: opts.config.callTimeoutSeconds * 1000,
    landlock: {
      enabled: opts.config.landlock,
      rules: landlockRules(plan.spec, plan.workDir, {
        executable: process.execPath,
        installDir: pathVars.installDir,
      }),
      connectPorts: plan.spec.net === "none" ? [] : plan.spec.net.connectPorts,
    },
  };
}
