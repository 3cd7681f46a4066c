/**
 * RemapperRules's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const remapperRulesManifest: HandlerManifestInput = {
  name: "RemapperRules",
  description: "Policy remapping: XPath rules that turn tenant policy documents into agent configuration",
  group: "config",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 256, cpuSeconds: 3600 },
  maxPackageBytes: 8 * 1024 * 1024,
  contributes: ["config.overlays"],
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(remapperRulesManifest);
}
