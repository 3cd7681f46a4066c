/**
 * `agent openapi`: the control plane's OpenAPI 3.1 document. From the
 * running agent when one answers (what it actually serves), otherwise
 * generated in-process from the same route schemas, so it works in a build
 * pipeline with no agent running.
 */
import { randomBytes } from "node:crypto";
import { defineCommand } from "citty";
import type { AgentApi } from "../../agent/api.ts";
import { buildControlApp, openApiDocument } from "../../control/server.ts";
import { printJson } from "../output.ts";
import { agentArgs, connectIfRunning, loadAgentConfig, wiredRoutes } from "./session.ts";

/** Generating the document never calls the API; routes only need something to close over. */
const unusedApi = new Proxy({} as AgentApi, {
  get: () => () => {
    throw new Error("agent openapi does not call the agent");
  },
});

export default defineCommand({
  meta: { name: "openapi", description: "Print the control plane's OpenAPI 3.1 document (JSON)" },
  args: agentArgs,
  async run({ args }) {
    const config = loadAgentConfig(args);
    const client = await connectIfRunning(config.stateDir);
    if (client) {
      printJson(await client.openapi());
      return;
    }
    const control = buildControlApp(unusedApi, {
      token: randomBytes(32).toString("hex"),
      extensions: await wiredRoutes(),
    });
    try {
      printJson(openApiDocument(control.app));
    } finally {
      control.close();
    }
  },
});
