/**
 * ProductRulesFeed's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";

export const productRulesFeedManifest: HandlerManifestInput = {
  name: "ProductRulesFeed",
  description: "Product Lua library shared by the Behavior rules (loaded first, same interpreter)",
  group: "behavior",
  // Reads only its payload and its group's work directory (the content keyring).
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 512, cpuSeconds: 86400 },
  maxPackageBytes: 16 * 1024 * 1024,
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(productRulesFeedManifest);
}
