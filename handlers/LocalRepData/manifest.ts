/**
 * LocalRepData's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const localRepDataManifest: HandlerManifestInput = {
  name: "LocalRepData",
  description: "Reputation by file SHA-256 and by signer certificate",
  group: "scanner",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  // 10M entries ≈ 185 MB; room for ~40M.
  limits: { memoryMb: 1024, cpuSeconds: 600 },
  maxPackageBytes: 1024 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(localRepDataManifest);
}
