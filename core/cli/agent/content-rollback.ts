/**
 * `agent content rollback TYPE`: switches TYPE back to its last-known-good
 * version and marks the current one bad so the next cycle does not
 * reinstall it. Exit 3 (STORE_NO_LKG) when there is nothing to go back to.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../output.ts";
import { agentArgs, withAgentApi } from "./session.ts";

export default defineCommand({
  meta: { name: "rollback", description: "Roll a content type back to its last-known-good version" },
  args: {
    type: { type: "positional", required: true, description: "content type, e.g. Hmpa_data" },
    ...agentArgs,
  },
  async run({ args }) {
    const info = await withAgentApi(args, (api) => api.rollback(args.type));
    if (args.json) printJson(info);
    else printText(`${info.type}: now at version ${info.version ?? "-"} (handler ${info.handlerState})`);
  },
});
