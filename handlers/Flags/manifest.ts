/**
 * Flags's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const flagsManifest: HandlerManifestInput = {
  name: "Flags",
  description: "Flags Supplement: which features this agent release may turn on (the Flags Service decides)",
  group: "config",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 128, cpuSeconds: 600 },
  maxPackageBytes: 1024 * 1024,
  contributes: ["config.flags"],
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(flagsManifest);
}
