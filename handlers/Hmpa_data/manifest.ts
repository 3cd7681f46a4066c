/**
 * Hmpa_data's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const hmpaDataManifest: HandlerManifestInput = {
  name: "Hmpa_data",
  description: "Global allowlist of HitmanPro.Alert detection thumbprints",
  group: "hmpa",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  // 10M entries is ~55 MB; the limits leave room for ~45M.
  limits: { memoryMb: 512, cpuSeconds: 120 },
  maxPackageBytes: 256 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(hmpaDataManifest);
}
