/** `agent status`: health, update state, content table, last errors (or AgentStatus with --json). */
import { defineCommand } from "citty";
import { printJson, printText } from "../output.ts";
import { renderStatus } from "./render.ts";
import { agentArgs, withAgentApi } from "./session.ts";

export default defineCommand({
  meta: { name: "status", description: "Show agent health, update state and installed content" },
  args: agentArgs,
  async run({ args }) {
    const { status, mode } = await withAgentApi(
      args,
      async (api, mode) => ({ status: await api.status(), mode }),
      // Looking must not change what is looked at: offline, the state dir is opened read-only.
      { readOnly: true },
    );
    if (args.json) printJson(status);
    else printText(renderStatus(status, { offline: mode === "offline" }));
  },
});
