/**
 * `contentctl release status`: each group's gate, soak, active agents and
 * listed versions; each recent release's phase per group with its health
 * (from the fleet database `contentctl serve` keeps) and what happens next.
 * State it cannot read (no database, unreachable, no schema) is an error
 * with its code and exit 3 — never an empty "no releases".
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { releaseArgs, releaseConfig, releaseEngine, renderStatusView } from "./release-args.ts";

export default defineCommand({
  meta: { name: "status", description: "Show release groups, versions, progress and health" },
  args: releaseArgs,
  async run({ args }) {
    const view = await (await releaseEngine(args, releaseConfig(args), { mode: "read" })).status();
    if (args.json) printJson(view);
    else printText(renderStatusView(view));
    return view;
  },
});
