/**
 * Exclusions: what the agent's protection features must leave alone
 * (docs/exclusions.md). One shape for every source — vendor APPFEED rules,
 * the administrator's USERAPPFEED rules, the local `exclusions` config —
 * and one set of scopes naming the features that honour them.
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

export const EXCLUSION_KINDS = ["path", "process", "sha256", "signer"] as const;
export type ExclusionKind = (typeof EXCLUSION_KINDS)[number];

/**
 * scan: on-demand scans (`agent scan`); onAccess: the fanotify scanner;
 * behavior: Behavior event delivery; lookups: Live Protection (SXL) lookups.
 */
export const EXCLUSION_SCOPES = ["scan", "onAccess", "behavior", "lookups"] as const;
export type ExclusionScope = (typeof EXCLUSION_SCOPES)[number];

/** An exclusion as a source proposes it (before the agent's refusal rules, rules.ts). */
export const ExclusionInputSchema = lazySchema(() =>
  z.strictObject({
    kind: z.enum(EXCLUSION_KINDS),
    value: z.string().check(z.minLength(1), z.maxLength(4096)),
    scope: z.array(z.enum(EXCLUSION_SCOPES)).check(z.minLength(1), z.maxLength(EXCLUSION_SCOPES.length)),
    reason: z._default(z.string().check(z.maxLength(512)), ""),
  }),
);
export type ExclusionInput = z.input<typeof ExclusionInputSchema>;

/** An accepted exclusion: `source` says where it came from ("config", "APPFEED:<rule>", "USERAPPFEED:<rule>"). */
export interface Exclusion {
  kind: ExclusionKind;
  value: string;
  scope: ExclusionScope[];
  reason: string;
  source: string;
}

/** The `exclusions` section of agent.json: local exclusions, source "config". */
export const ExclusionsConfigSchema = lazySchema(() =>
  z._default(z.array(ExclusionInputSchema).check(z.maxLength(100_000)), []),
);
