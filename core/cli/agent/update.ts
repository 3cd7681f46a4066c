/**
 * `agent update`: asks the running agent to run an update cycle now.
 * `agent update --once --repo … --trust …` instead runs one cycle in this
 * process on the state dir (no agent running, e.g. provisioning or a
 * rescue from a USB stick). Exit 3 when the cycle failed or rejected content.
 */
import { resolve } from "node:path";
import { defineCommand } from "citty";
import type { UpdateCycleReport } from "../../agent/api.ts";
import { ControlClient } from "../../control/client.ts";
import { printJson, printText, UsageError } from "../output.ts";
import { renderReport } from "./render.ts";
import { agentArgs, exitCodeForReport, loadAgentConfig, withOfflineAgent } from "./session.ts";

const isUrl = (s: string) => /^https?:\/\//i.test(s);

export default defineCommand({
  meta: { name: "update", description: "Run an update cycle now (running agent, or --once in-process)" },
  args: {
    ...agentArgs,
    once: {
      type: "boolean",
      default: false,
      description: "run one cycle in this process instead of asking the agent",
    },
    repo: {
      type: "string",
      valueHint: "URL_OR_DIR",
      description: "content repository (--once; overrides config)",
    },
    group: { type: "string", description: "update group (--once; overrides config)" },
    trust: { type: "string", valueHint: "ROOT.pem", description: "trusted roots (--once; overrides config)" },
  },
  async run({ args }) {
    let report: UpdateCycleReport;
    if (!args.once) {
      if (args.repo || args.group || args.trust) {
        throw new UsageError(
          "CLI_USAGE",
          "--repo, --group and --trust apply to --once; the running agent uses its config",
        );
      }
      const config = loadAgentConfig(args);
      // Online only: a cycle "now" means the running agent's cycle; CTL_NOT_RUNNING → exit 4.
      const client = await ControlClient.fromStateDir(config.stateDir);
      report = await client.update();
    } else {
      const config = loadAgentConfig(args, {
        update: {
          repo: args.repo && !isUrl(args.repo) ? resolve(args.repo) : args.repo,
          group: args.group,
          trust: args.trust ? resolve(args.trust) : undefined,
        },
        // A one-shot provisioning cycle: handlers run in this process (docs/handler-host.md, "Isolation modes").
        hosts: { isolation: "in-process" },
      });
      report = await withOfflineAgent(config, (agent) => agent.update());
    }
    if (args.json) printJson(report);
    else printText(renderReport(report));
    process.exitCode = exitCodeForReport(report);
  },
});
