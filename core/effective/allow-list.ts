/**
 * The one place that decides which configuration keys content may set.
 * Policy overlays (RemapperRules output) and anything else that is not the
 * administrator's own agent.json pass through `checkPolicyKey`: the
 * RemapperRules validator calls it when a package arrives, and the resolver
 * calls it again before applying, because the supervisor does not trust what
 * a host process returns.
 *
 * Deny wins over allow, and anything on neither list is refused: a new
 * config section is closed to content until someone adds it here on purpose.
 */

/** Never settable by content: where updates come from and who is trusted (E1). */
export const FORBIDDEN_KEYS: readonly string[] = [
  "stateDir",
  "update.*",
  "control.*",
  "hosts.*",
  "fleet.*",
  "alerts.*",
  "policy.*",
  // Where samples and query results go, and the key samples are sealed to: content must not
  // redirect data off the host.
  "liveProtection.sampleUrl",
  "liveProtection.vendorKey",
  "liveProtection.zone",
  "liveProtection.resolver",
  "query.osquerySocket",
  "query.results.*",
  "query.engine",
];

/** Settable by policy (E2): protection behaviour, never plumbing. */
export const ALLOWED_KEYS: readonly string[] = [
  "liveProtection.*",
  "onAccess.*",
  // IPS enablement and what it inspects; never its queue, batching or self-disable safety limits.
  "ips.enabled",
  "ips.mode",
  "ips.ports.*",
  "ml.*",
  "query.eventFormat",
  "query.watchdog.*",
  "reputation.*",
];

const KEY_RE = /^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/;

function matches(pattern: string, key: string): boolean {
  if (pattern.endsWith(".*")) {
    const prefix = pattern.slice(0, -2);
    return key === prefix || key.startsWith(`${prefix}.`);
  }
  return key === pattern;
}

export type KeyVerdict =
  | { ok: true }
  | { ok: false; code: "POL_FORBIDDEN_KEY" | "POL_KEY_NOT_ALLOWED" | "POL_BAD_KEY"; reason: string };

/** E1–E3: may content set `key`? */
export function checkPolicyKey(key: string): KeyVerdict {
  if (!KEY_RE.test(key)) {
    return { ok: false, code: "POL_BAD_KEY", reason: `"${key}" is not a dotted config key (E3)` };
  }
  const denied = FORBIDDEN_KEYS.find((p) => matches(p, key));
  if (denied) {
    return {
      ok: false,
      code: "POL_FORBIDDEN_KEY",
      reason: `${key} is reserved to the administrator's agent.json (matches ${denied}; E1)`,
    };
  }
  if (!ALLOWED_KEYS.some((p) => matches(p, key))) {
    return {
      ok: false,
      code: "POL_KEY_NOT_ALLOWED",
      reason: `${key} is not on the policy allow-list (${ALLOWED_KEYS.join(", ")}; E2)`,
    };
  }
  return { ok: true };
}

/** Whether a subscription pattern (`liveProtection.*`, `flags.onAccessBlock`, `*`) covers `key`. */
export function keyMatches(pattern: string, key: string): boolean {
  return pattern === "*" || matches(pattern, key);
}
