/**
 * `agent content ack TYPE`: acknowledges an automatic rollback of TYPE. The
 * rollback keeps health AMBER (CONTENT_ROLLED_BACK) until a newer good
 * version installs or an administrator runs this; online or offline.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../output.ts";
import { agentArgs, withAgentApi } from "./session.ts";

export default defineCommand({
  meta: {
    name: "ack",
    description: "Acknowledge an automatic rollback of a content type (clears its AMBER health reason)",
  },
  args: {
    type: { type: "positional", required: true, description: "content type, e.g. Hmpa_data" },
    ...agentArgs,
  },
  async run({ args }) {
    const result = await withAgentApi(args, (api) => api.ack(args.type));
    if (args.json) printJson(result);
    else if (!result.acknowledged) printText(`${result.type}: no automatic rollback to acknowledge`);
    else {
      const n = result.acknowledged;
      printText(`${result.type}: acknowledged the rollback from v${n.from ?? "?"} to v${n.to} (${n.at})`);
    }
  },
});
