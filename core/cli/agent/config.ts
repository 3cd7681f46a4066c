/** `agent config`: the effective configuration (docs/policy.md). */
import { defineCommand } from "citty";

export default defineCommand({
  meta: {
    name: "config",
    description: "Effective configuration: agent.json + policy overlays, with origins",
  },
  subCommands: {
    show: () => import("./config-show.ts").then((m) => m.default),
  },
});
