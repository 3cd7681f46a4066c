/**
 * Feature gates: the one place where a feature flag decides what a
 * configuration value may be. A gated feature is a config value that needs a
 * flag (on-access `block`, ML `live`, IPS `enabled: true`); while the flag is
 * off the effective configuration carries the feature's safe value instead
 * (`detect`, `telemetry`, `false`), with an origin that says which flag
 * withheld what. Every service that follows the effective configuration
 * therefore gets the gate for free, and re-applies when the flag flips —
 * the same way it re-applies a policy change.
 *
 * When gates are in force: once this host has accepted a Flags supplement
 * (it is remembered, so removing the Flags content does not lift them).
 * Before that — no Flags content ever installed: air-gapped installs,
 * releases that predate a flag — features follow their configuration as
 * they always did (docs/policy.md, "Feature gates"). Pure: no I/O.
 */
import type { AgentConfig } from "../config.ts";
import { reparseSections } from "../config.ts";
import type { Origin, Resolution } from "./resolver.ts";

export interface FeatureGate {
  /** The flag that must be on (supplement available × service on). */
  flag: string;
  /** The dotted config key the feature is chosen by. */
  key: string;
  /** The value that needs the flag. */
  gated: unknown;
  /** What the key becomes while the flag is off: the feature's safe mode. */
  fallback: unknown;
  /** For people: what the flag allows. */
  feature: string;
}

/** Documented in docs/policy.md and listed in examples/Flags/flags.json. */
export const FEATURE_GATES: readonly FeatureGate[] = [
  {
    flag: "onAccessBlock",
    key: "onAccess.mode",
    gated: "block",
    fallback: "detect",
    feature: "on-access block mode (otherwise detect)",
  },
  {
    flag: "mlLive",
    key: "ml.mode",
    gated: "live",
    fallback: "telemetry",
    feature: "ML live mode: scores become detections (otherwise telemetry)",
  },
  {
    flag: "ips",
    key: "ips.enabled",
    gated: true,
    fallback: false,
    feature: "IPS packet path (otherwise off)",
  },
];

export interface GateRow {
  flag: string;
  key: string;
  feature: string;
  /** The value configuration (agent.json, policy) asks for. */
  wanted: unknown;
  /** The value in force after the gate. */
  value: unknown;
  /** True when the flag took the wanted value away. */
  withheld: boolean;
  /** ungated: no Flags supplement accepted yet; allowed / withheld: the flag's result decided. */
  state: "ungated" | "allowed" | "withheld" | "not-requested";
}

/**
 * Applies every gate to a resolution. `inForce` false (no supplement ever
 * accepted) leaves values alone; otherwise a gated value whose flag is off
 * becomes the fallback.
 */
export function applyGates(
  resolution: Resolution,
  inForce: boolean,
  enabled: (flag: string) => boolean,
  gates: readonly FeatureGate[] = FEATURE_GATES,
): { resolution: Resolution; rows: GateRow[] } {
  const rows: GateRow[] = [];
  let input: Record<string, unknown> | undefined;
  const origins: Record<string, Origin> = { ...resolution.origins };
  for (const g of gates) {
    const wanted = resolution.values[g.key];
    const requested = JSON.stringify(wanted) === JSON.stringify(g.gated);
    const allowed = enabled(g.flag);
    const withheld = inForce && requested && !allowed;
    const state: GateRow["state"] = !inForce
      ? "ungated"
      : !requested
        ? "not-requested"
        : allowed
          ? "allowed"
          : "withheld";
    rows.push({
      flag: g.flag,
      key: g.key,
      feature: g.feature,
      wanted,
      value: withheld ? g.fallback : wanted,
      withheld,
      state,
    });
    if (!withheld) continue;
    // Only the sections a gate changes are copied and parsed again: the whole config's schema was
    // ~2 ms of every one-shot command on a host with Flags content (agent scan's CLI).
    input ??= {};
    const section = g.key.split(".")[0]!;
    input[section] ??= structuredClone((resolution.config as unknown as Record<string, unknown>)[section]);
    setPath(input, g.key, g.fallback);
    const wantedOrigin = resolution.origins[g.key];
    origins[g.key] = { source: "flag", flag: g.flag, wanted, ...(wantedOrigin ? { wantedOrigin } : {}) };
  }
  if (!input) return { resolution, rows };
  // The fallbacks are the schema's own safe values; parsing again keeps the config's type honest.
  const config: AgentConfig = reparseSections(resolution.config, input);
  const values = { ...resolution.values };
  for (const r of rows) if (r.withheld) values[r.key] = r.value;
  return { resolution: { ...resolution, config, values, origins }, rows };
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>;
  node[parts[parts.length - 1]!] = value;
}
