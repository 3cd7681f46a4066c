/**
 * AgentSoftware's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import {
  type HandlerManifest,
  type HandlerManifestInput,
  HandlerManifestSchema,
} from "../../core/handler/contract.ts";
import { AGENT_FILE, AGENT_HEAD_BYTES, MAX_AGENT_BYTES } from "./format.ts";

export const agentSoftwareManifest: HandlerManifestInput = {
  name: "AgentSoftware",
  description: "The agent executable itself, switched in through an A/B slot with a health deadline",
  group: "software",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  // The host gets the executable's first page and its size, never the build itself (headOnly), so
  // its memory is the descriptor's and the header's, not the 120+ MiB executable's.
  limits: { memoryMb: 64, cpuSeconds: 600 },
  maxPackageBytes: MAX_AGENT_BYTES + 1024 * 1024,
  headOnly: { [AGENT_FILE]: AGENT_HEAD_BYTES },
  contributes: ["agent.software"],
};

/** Parsed when the executable is built: a macro of index.ts (contract.ts, defineParsedHandler). */
export function parsedManifest(): HandlerManifest {
  return HandlerManifestSchema.parse(agentSoftwareManifest);
}
