/**
 * AgentSoftware's manifest on its own: what the supervisor needs to know about the
 * handler (group, privileges, limits) without evaluating its code
 * (handlers/manifests.ts; the host process imports index.ts).
 */
import type { HandlerManifestInput } from "../../core/handler/contract.ts";
import { MAX_AGENT_BYTES } from "./format.ts";

export const agentSoftwareManifest: HandlerManifestInput = {
  name: "AgentSoftware",
  description: "The agent executable itself, switched in through an A/B slot with a health deadline",
  group: "software",
  privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false },
  limits: { memoryMb: 512, cpuSeconds: 600 },
  maxPackageBytes: MAX_AGENT_BYTES + 1024 * 1024,
  contributes: ["agent.software"],
};
