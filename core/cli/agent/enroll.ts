/**
 * `agent enroll --fleet URL --tenant-token FILE [--tenant T]`: registers this
 * agent's own key with the fleet service (docs/rollout.md, "Agent identity").
 * Makes an Ed25519 key pair on first use (private key STATE/fleet-key.der,
 * 0600), sends the public key with the tenant token, and records the group
 * the fleet assigned in STATE/fleet-identity.json. Heartbeats are then
 * signed by the agent key. Running it again re-sends the same key.
 */
import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { enrollAgent } from "../../agent/identity.ts";
import { ConfigError } from "../../errors.ts";
import { printJson, printText } from "../output.ts";
import { agentArgs, loadAgentConfig } from "./session.ts";

export default defineCommand({
  meta: { name: "enroll", description: "Enroll this agent's key with the fleet service (signed heartbeats)" },
  args: {
    ...agentArgs,
    fleet: {
      type: "string",
      required: true,
      valueHint: "URL",
      description: "fleet service base URL (https, or http to loopback), e.g. https://updates.example.com/",
    },
    "tenant-token": {
      type: "string",
      required: true,
      valueHint: "FILE",
      description: "file holding the tenant's enrollment token (one line)",
    },
    tenant: { type: "string", description: "tenant name (default: fleet.tenant from the config)" },
  },
  async run({ args }) {
    const config = loadAgentConfig(args);
    const file = args["tenant-token"];
    let token: string;
    try {
      token = readFileSync(file, "utf8").trim();
    } catch (e) {
      throw new ConfigError(
        "CFG_FLEET_TOKEN",
        `${file}: cannot read the tenant token (${(e as Error).message})`,
        {
          file,
          cause: e,
        },
      );
    }
    if (token.length < 16)
      throw new ConfigError("CFG_FLEET_TOKEN", `${file}: the tenant token is too short`, { file });
    const identity = await enrollAgent({
      stateDir: config.stateDir,
      fleet: args.fleet,
      tenant: args.tenant ?? config.fleet.tenant,
      token,
    });
    if (args.json) printJson(identity);
    else
      printText(
        `enrolled ${identity.tenant}/${identity.agentId} with ${identity.fleet}\ngroup        ${identity.group} (assigned by the fleet; set update.group to it)\nheartbeats   signed by ${config.stateDir}/fleet-key.der`,
      );
    return identity;
  },
});
