/** `agent policy`: local policy documents (docs/policy.md). */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "policy", description: "Apply tenant policy documents locally" },
  subCommands: {
    apply: () => import("./cli-policy-apply.ts").then((m) => m.default),
    remove: () => import("./cli-policy-remove.ts").then((m) => m.default),
  },
});
