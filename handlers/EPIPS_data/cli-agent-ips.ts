/** `agent ips status|enable|disable` (docs/cli.md, docs/ips.md). */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "ips", description: "Intrusion prevention (NFQUEUE + EPIPS_data): status, enable, disable" },
  subCommands: {
    status: () => import("./cli-agent-ips-status.ts").then((m) => m.default),
    enable: () => import("./cli-agent-ips-switch.ts").then((m) => m.enableCommand),
    disable: () => import("./cli-agent-ips-switch.ts").then((m) => m.disableCommand),
  },
});
