/**
 * EPIPS_data's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const epipsDataManifest: HandlerManifestInput = {
  name: "EPIPS_data",
  description: "IPS signatures (Suricata rule subset) matched against queued packets",
  group: "ips",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  // A 1M-rule file compiles in ~1.2 GB (bench/ips.ts); the default 100k-rule sets need ~150 MB.
  limits: { memoryMb: 2048, cpuSeconds: 86_400 },
  maxPackageBytes: 512 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(epipsDataManifest);
}
