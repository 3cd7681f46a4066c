/** `agent uninstall`: reverses `agent install` (as root); --keep-state keeps /var/lib/outpost and the user. */
import { defineCommand } from "citty";
import { uninstall } from "../../install/install.ts";
import { printJson, printText } from "../output.ts";

export default defineCommand({
  meta: {
    name: "uninstall",
    description: "Stop and remove the installed agent, its unit, config and (unless --keep-state) state",
  },
  args: {
    root: {
      type: "string",
      default: "/",
      valueHint: "DIR",
      description: "uninstall from DIR as if it were /",
    },
    "keep-state": {
      type: "boolean",
      default: false,
      description: "keep /var/lib/outpost (content, history) and the outpost user",
    },
    json: { type: "boolean", default: false, description: "print machine-readable JSON" },
  },
  run({ args }) {
    const report = uninstall({ root: args.root, keepState: args["keep-state"] });
    if (args.json) return printJson(report);
    printText(
      report.removed.length === 0
        ? `nothing installed in ${report.root}`
        : [`removed from ${report.root}:`, ...report.removed.map((p) => `  ${p}`)].join("\n"),
    );
  },
});
