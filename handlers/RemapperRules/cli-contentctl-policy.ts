/** `contentctl policy`: tenant policy documents on the fleet service (docs/policy.md). */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "policy", description: "Tenant policy documents served to agents with their update cycle" },
  subCommands: {
    set: () => import("./cli-contentctl-policy-set.ts").then((m) => m.default),
  },
});
