/**
 * Behavior's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const behaviorManifest: HandlerManifestInput = {
  name: "Behavior",
  description: "Behavior rules: sandboxed Lua reactors over process, network, file and config events",
  group: "behavior",
  // The sensor polls procfs; nothing else on the host is read, nothing written.
  privileges: { runAs: "agent", fs: { mode: "read-only", paths: ["/proc/**"] }, net: "none", exec: false },
  limits: { memoryMb: 512, cpuSeconds: 86400 },
  maxPackageBytes: 32 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(behaviorManifest);
}
