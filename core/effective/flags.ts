/**
 * Feature flags, as the seed defines them: the Flags Supplement (content,
 * per agent release) says whether a feature is *available*; the Flags
 * Service (per tenant, from the fleet) says *on* or *off*. The table:
 *
 *   supplement  service   feature
 *   off         (any)     off        F1
 *   available   off       off        F2
 *   available   on        on         F3
 *
 * and when the service's word is unknown, missing, or the service is
 * unreachable, the last word it did give is used, else off (F4). A flag the
 * supplement does not list is off (F5). Pure functions; service.ts keeps the
 * memory of last words.
 */
export type SupplementWord = "off" | "available";
export type ServiceWord = "on" | "off";

export const FLAG_NAME_RE = /^[a-z][A-Za-z0-9]{0,63}$/;

/** F1–F3. */
export function combineFlag(supplement: SupplementWord | undefined, service: ServiceWord): boolean {
  return supplement === "available" && service === "on";
}

export interface FlagRow {
  flag: string;
  /** The supplement's word; null when the installed supplement does not list it (or none is installed). */
  supplement: SupplementWord | null;
  /** The service's word in its latest answer; null when it gave none we understand. */
  service: ServiceWord | null;
  /** Where the service word that counted came from. */
  serviceSource: "service" | "last-known" | "default-off";
  /** The service word that counted (after F4). */
  serviceEffective: ServiceWord;
  enabled: boolean;
}

export interface FlagInputs {
  /** Supplement for this agent version; null when no Flags content is loaded. */
  supplement: Record<string, SupplementWord> | null;
  /** The service's latest answer for this tenant; null when missing or unreachable. */
  service: Record<string, string> | null;
  /** Last word the service gave per flag. */
  lastKnown: Record<string, ServiceWord>;
}

export function resolveFlags(inputs: FlagInputs): {
  rows: FlagRow[];
  lastKnown: Record<string, ServiceWord>;
} {
  const lastKnown = { ...inputs.lastKnown };
  const names = new Set([
    ...Object.keys(inputs.supplement ?? {}),
    ...Object.keys(inputs.service ?? {}),
    ...Object.keys(inputs.lastKnown),
  ]);
  const rows: FlagRow[] = [];
  for (const flag of [...names].filter((n) => FLAG_NAME_RE.test(n)).sort()) {
    const raw = inputs.service?.[flag];
    const service: ServiceWord | null = raw === "on" || raw === "off" ? raw : null;
    let serviceEffective: ServiceWord;
    let serviceSource: FlagRow["serviceSource"];
    if (service) {
      serviceEffective = service;
      serviceSource = "service";
      lastKnown[flag] = service;
    } else if (lastKnown[flag]) {
      serviceEffective = lastKnown[flag];
      serviceSource = "last-known";
    } else {
      serviceEffective = "off";
      serviceSource = "default-off";
    }
    const supplement = inputs.supplement?.[flag] ?? null;
    rows.push({
      flag,
      supplement,
      service,
      serviceSource,
      serviceEffective,
      enabled: combineFlag(supplement ?? undefined, serviceEffective),
    });
  }
  return { rows, lastKnown };
}

/** What features use: one question, one answer, and a way to hear about changes. */
export interface FlagsApi {
  /** True only when the supplement says available and the service (or its last word) says on. */
  enabled(flag: string): boolean;
  /** Called with the new value whenever the flag's result changes; returns an unsubscribe. */
  onChange(flag: string, fn: (enabled: boolean) => void): () => void;
  list(): FlagRow[];
}
