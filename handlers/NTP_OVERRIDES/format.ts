/**
 * NTP_OVERRIDES payload: `overrides.json`, the list of kernel modules known
 * to be incompatible with the IPS (docs/ips.md, "NTP_OVERRIDES"):
 *
 *   { "entries": [ { "module": "acme_filter", "reason": "…", "fixedIn": "4.2" } ] }
 *
 * `fixedIn` absent: every version is incompatible; present: versions older
 * than it are (compareVersions). Validated at the edge with zod; the
 * matching itself (`findOverrides`) is a pure function of the list and the
 * modules the supervisor read.
 */

import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import { compareVersions } from "./version.ts";

export const PAYLOAD_FILE = "overrides.json";
export const MAX_ENTRIES = 100_000;

export const EntrySchema = lazySchema(() =>
  z.strictObject({
    module: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, "a kernel module name ([A-Za-z0-9_-], ≤ 64)")),
    reason: z.string().check(z.minLength(1), z.maxLength(1024)),
    fixedIn: z.optional(z.string().check(z.minLength(1), z.maxLength(64))),
  }),
);

export const OverridesSchema = lazySchema(() =>
  z.strictObject({ entries: z.array(EntrySchema).check(z.maxLength(MAX_ENTRIES)) }),
);

export type OverrideEntry = z.infer<typeof EntrySchema>;

export interface LoadedModule {
  name: string;
  /** From /sys/module/<name>/version; null when the module publishes none. */
  version: string | null;
}

export interface OverrideMatch {
  module: string;
  version: string | null;
  reason: string;
  fixedIn?: string;
}

/** Module names are compared with '-' and '_' equal, as the kernel does. */
const norm = (m: string) => m.replace(/-/g, "_");

/**
 * Entries that apply to the loaded modules. A module with no version
 * against an entry with `fixedIn` counts as a match: we cannot prove it is
 * the fixed one, and the cost of guessing wrong is a network outage.
 */
export function findOverrides(
  entries: readonly OverrideEntry[],
  modules: readonly LoadedModule[],
): OverrideMatch[] {
  const loaded = new Map(modules.map((m) => [norm(m.name), m]));
  const out: OverrideMatch[] = [];
  for (const e of entries) {
    const m = loaded.get(norm(e.module));
    if (!m) continue;
    if (e.fixedIn !== undefined && m.version !== null && compareVersions(m.version, e.fixedIn) >= 0) continue;
    out.push({
      module: m.name,
      version: m.version,
      reason: e.reason,
      ...(e.fixedIn ? { fixedIn: e.fixedIn } : {}),
    });
  }
  return out;
}
