/**
 * `agent ips enable` / `agent ips disable`: the administrator's switch.
 * Enable also clears a safety trip (IPS_SELF_DISABLED). Online it acts at
 * once (POST /v1/ips/enable|disable); offline it records the choice in
 * state.json for the next start.
 */
import { defineCommand } from "citty";
import { agentArgs, connectIfRunning, loadAgentConfig } from "../../core/cli/agent/session.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { renderIpsStatus } from "./cli-agent-ips-status.ts";
import type { IpsStatus } from "./service.ts";
import { loadIpsState, saveIpsState } from "./state.ts";

function switchCommand(action: "enable" | "disable") {
  return defineCommand({
    meta: {
      name: action,
      description:
        action === "enable"
          ? "Turn the IPS on (clears a self-disable); overrides ips.enabled until 'disable'"
          : "Turn the IPS off until 'enable'; overrides ips.enabled",
    },
    args: agentArgs,
    async run({ args }) {
      const config = loadAgentConfig(args);
      const client = await connectIfRunning(config.stateDir);
      if (client) {
        const s = (await client.request("POST", `/v1/ips/${action}`)) as IpsStatus;
        if (args.json) printJson(s);
        else printText(renderIpsStatus(s));
        return;
      }
      const { state } = loadIpsState(config.stateDir);
      const next =
        action === "enable"
          ? { admin: "enabled" as const, safety: null }
          : { admin: "disabled" as const, safety: state.safety };
      saveIpsState(config.stateDir, next);
      if (args.json) printJson({ running: false, ...next });
      else printText(`agent not running; IPS ${action}d for its next start`);
    },
  });
}

export const enableCommand = switchCommand("enable");
export const disableCommand = switchCommand("disable");
