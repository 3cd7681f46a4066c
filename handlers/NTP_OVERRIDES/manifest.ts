/**
 * NTP_OVERRIDES's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const ntpOverridesManifest: HandlerManifestInput = {
  name: "NTP_OVERRIDES",
  description: "Kernel modules incompatible with the IPS: a match disables it, overriding policy",
  group: "ips",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 128, cpuSeconds: 600 },
  maxPackageBytes: 16 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(ntpOverridesManifest);
}
