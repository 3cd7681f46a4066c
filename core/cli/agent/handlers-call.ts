/**
 * `agent handlers call TYPE METHOD [ARGS_JSON]`: calls a handler's API
 * method, on the running agent or offline on the state dir — the generic
 * form of commands like `agent hmpa check`. Prints the result as JSON
 * (`{ "result": … }` with --json, the same body as the HTTP route).
 */
import { defineCommand } from "citty";
import { printJson, UsageError } from "../output.ts";
import { agentArgs, callHandler } from "./session.ts";

export default defineCommand({
  meta: {
    name: "call",
    description: "Call a content handler's API method with JSON arguments (e.g. Hmpa_data check)",
  },
  args: {
    type: { type: "positional", required: true, description: "content type, e.g. Hmpa_data" },
    method: { type: "positional", required: true, description: "handler method, e.g. check" },
    args: {
      type: "positional",
      required: false,
      description: 'arguments as JSON, e.g. \'{"thumbprint":"StackPivot:3f9a"}\' (default null)',
    },
    ...agentArgs,
  },
  async run({ args }) {
    let callArgs: unknown = null;
    if (args.args !== undefined && args.args.trim() !== "") {
      try {
        callArgs = JSON.parse(args.args);
      } catch (e) {
        throw new UsageError("CLI_USAGE", `ARGS is not valid JSON: ${(e as Error).message}`);
      }
    }
    const result =
      (await callHandler(args.state, args.type, args.method, callArgs, {
        configFile: args.config,
      })) ?? null;
    printJson(args.json ? { result } : result);
  },
});
