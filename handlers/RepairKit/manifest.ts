/**
 * RepairKit's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const repairKitManifest: HandlerManifestInput = {
  name: "RepairKit",
  description: "Self-repair rules for the agent's own installation, run each update cycle and on demand",
  group: "repair",
  // Root, because what it repairs is root's (state dir, trust store). Its Lua API confines rules
  // to the installation; nothing here runs a program or talks to the network.
  privileges: {
    runAs: "root",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a placeholder the host expands, not a template
    fs: { mode: "read-write", paths: ["${stateDir}/**", "/etc/outpost/**"] },
    net: "none",
    exec: false,
    agent: true,
  },
  limits: { memoryMb: 256, cpuSeconds: 3600 },
  maxPackageBytes: 8 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(repairKitManifest);
}
