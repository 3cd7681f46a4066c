/**
 * `contentctl release status`: each group's gate, soak, active agents and
 * listed versions; each recent release's phase per group with its health
 * (from the fleet snapshot `contentctl serve` keeps) and what happens next.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { ReleaseEngine } from "../engine.ts";
import { releaseArgs, releaseConfig, renderStatusView } from "./release-args.ts";

export default defineCommand({
  meta: { name: "status", description: "Show release groups, versions, progress and health" },
  args: releaseArgs,
  async run({ args }) {
    const view = new ReleaseEngine({ config: releaseConfig(args) }).status();
    if (args.json) printJson(view);
    else printText(renderStatusView(view));
    return view;
  },
});
