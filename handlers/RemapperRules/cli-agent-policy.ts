/** `agent policy`: local policy documents (docs/policy.md). */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "policy", description: "Apply tenant policy documents locally" },
  subCommands: {
    apply: () => import("./cli-agent-policy-apply.ts").then((m) => m.default),
    remove: () => import("./cli-agent-policy-remove.ts").then((m) => m.default),
  },
});
