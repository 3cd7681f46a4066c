/** `agent content list`: one row per registered content type (ContentInfo[] with --json). */
import { defineCommand } from "citty";
import { printJson, printText } from "../output.ts";
import { renderContentTable } from "./render.ts";
import { agentArgs, withAgentApi } from "./session.ts";

export default defineCommand({
  meta: {
    name: "list",
    description: "List content types: version, signing time, last-known-good, handler state",
  },
  args: agentArgs,
  async run({ args }) {
    const items = await withAgentApi(args, (api) => api.content(), { readOnly: true });
    if (args.json) printJson(items);
    else printText(renderContentTable(items));
  },
});
