/** `contentctl flags`: the Flags Service half on the fleet (docs/policy.md, "Flags"). */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "flags", description: "Feature flags per tenant (the Flags Service)" },
  subCommands: {
    set: () => import("./cli-contentctl-flags-set.ts").then((m) => m.default),
  },
});
