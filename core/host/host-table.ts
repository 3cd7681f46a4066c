/**
 * The manager's tables, built once from the registry: a slot per content
 * type (refused when its declaration exceeds its group, G1) and a record per
 * host process. A process runs one group, or the groups that share it (G3,
 * policy.ts); its memory limit is one runtime plus the sum of its handlers'
 * `memoryMb`, its CPU limit the largest handler budget (cpu-limit.ts).
 */
import { describeError } from "../errors.ts";
import type { HandlerRegistry } from "../handler/registry.ts";
import type { Logger } from "../log.ts";
import { DEFAULT_CPU_CEILING_SECONDS, withHandlerCpu } from "./cpu-limit.ts";
import { privilegeViolation, processesOf } from "./policy.ts";
import { type GroupRec, type HostsConfig, newGroupRec, type TypeSlot } from "./records.ts";

export interface HostTable {
  slots: Map<string, TypeSlot>;
  /** Host process name → its record. */
  groups: Map<string, GroupRec>;
}

export function buildHostTable(registry: HandlerRegistry, config: HostsConfig, log: Logger): HostTable {
  const slots = new Map<string, TypeSlot>();
  const groups = new Map<string, GroupRec>();
  const { processOf, refused: conflicts } = processesOf(registry.groups());
  for (const c of conflicts) log.error("host group runs in a process of its own", describeError(c));
  for (const type of registry.types()) {
    const manifest = registry.require(type).manifest;
    const policy = registry.group(manifest.group);
    const refused = privilegeViolation(manifest, policy) ?? undefined;
    if (refused) log.error("handler refused: privileges exceed its group", describeError(refused));
    const host = processOf.get(manifest.group) ?? manifest.group;
    slots.set(type, {
      type,
      manifest,
      group: manifest.group,
      host,
      refused,
      state: refused ? "failed" : "not-installed",
      version: null,
      error: refused ? describeError(refused) : undefined,
    });
    let g = groups.get(host);
    if (!g) {
      // G3: every group of a shared process has the same allowance, so any one of them stands for it.
      g = newGroupRec(host, policy, config);
      groups.set(host, g);
    }
    if (!g.groups.includes(manifest.group)) g.groups.push(manifest.group);
    if (!refused) {
      g.types.push(type);
      g.limits.memoryBytes += manifest.limits.memoryMb * 1024 * 1024;
      g.limits.cpuSeconds = withHandlerCpu(
        g.limits.cpuSeconds,
        manifest.limits.cpuSeconds,
        config.cpuCeilingSeconds ?? DEFAULT_CPU_CEILING_SECONDS,
      );
    }
  }
  return { slots, groups };
}

/** The record of the process that runs `group` (a group name or a shared process's name). */
export function recordFor(groups: Map<string, GroupRec>, group: string): GroupRec | undefined {
  return groups.get(group) ?? [...groups.values()].find((g) => g.groups.includes(group));
}
