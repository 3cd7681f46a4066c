/**
 * The administrator's content policy as `agent status` shows it: the cadence,
 * the group actually polled, pins, and per content type what the group offers
 * against what this policy lets the agent run. The decision itself is made in
 * the trust core (`selectEntry` in core/update/trusted-state.ts, rules P1-P3);
 * this file only explains it, from the last verified index.
 */
import type { AgentConfig } from "../config.ts";
import { parseIndex, type RepoIndex } from "../repo/index-format.ts";
import type { UpdateMemory } from "../update/memory.ts";
import { type ContentPolicy, policyGroup, selectEntry } from "../update/trusted-state.ts";
import type { ContentInfo } from "./api.ts";

export interface PolicyContentStatus {
  type: string;
  installed: number | null;
  /** What the group's index offers now, and its N-1. */
  offered: number;
  previous: number | null;
  /** The version this policy points at; null when it holds where it is. */
  target: number | null;
  /** Why it holds (pin not offered, already past N-1, …), or null. */
  held: string | null;
}

export interface PolicyStatus {
  cadence: ContentPolicy["cadence"];
  /** The group the tenant is assigned (config update.group). */
  assignedGroup: string;
  /** The group actually polled (earlyGroup under cadence early). */
  group: string;
  earlyGroup: string | null;
  pins: Record<string, number>;
  /** Empty until an index for `group` has been verified. */
  content: PolicyContentStatus[];
}

export function contentPolicy(config: AgentConfig): ContentPolicy {
  const p = config.policy;
  return { cadence: p.cadence, pins: p.pins, ...(p.earlyGroup ? { earlyGroup: p.earlyGroup } : {}) };
}

export function describePolicy(
  config: AgentConfig,
  facts: {
    index?: RepoIndex | null;
    content: readonly Pick<ContentInfo, "type" | "version" | "signingTime">[];
  },
): PolicyStatus {
  const policy = contentPolicy(config);
  const installed = new Map(facts.content.map((c) => [c.type, c]));
  const content: PolicyContentStatus[] = [];
  for (const [type, entry] of Object.entries(facts.index?.content ?? {})) {
    const have = installed.get(type);
    const facts =
      have?.version != null && have.signingTime
        ? { version: have.version, signingTime: have.signingTime }
        : undefined;
    const sel = selectEntry(type, entry, facts, policy);
    content.push({
      type,
      installed: have?.version ?? null,
      offered: entry.version,
      previous: entry.previous?.version ?? null,
      target:
        "entry" in sel ? sel.entry.version : sel.hold === "up-to-date" ? (facts?.version ?? null) : null,
      held: "hold" in sel && sel.hold !== "up-to-date" ? sel.detail : null,
    });
  }
  return {
    cadence: policy.cadence,
    assignedGroup: config.update.group,
    group: policyGroup(config.update.group, policy),
    earlyGroup: policy.earlyGroup ?? null,
    pins: { ...policy.pins },
    content,
  };
}

/**
 * The one call `Agent.status()` needs: reads the cached, already verified
 * index of the polled group (an unreadable cache just means no per-type rows).
 */
export function policyStatus(
  config: AgentConfig,
  memory: Pick<UpdateMemory, "cachedIndex"> | undefined,
  content: readonly Pick<ContentInfo, "type" | "version" | "signingTime">[],
): PolicyStatus {
  const group = policyGroup(config.update.group, contentPolicy(config));
  let index: RepoIndex | null = null;
  const cached = memory?.cachedIndex(group);
  if (cached) {
    try {
      index = parseIndex(cached.index, `index-cache/${group}/index.json`);
    } catch {
      index = null;
    }
  }
  return describePolicy(config, { index, content });
}
