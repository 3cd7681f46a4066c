/** `agent version`: the build's version and commit (also `agent --version`). */
import { defineCommand } from "citty";
import { COMMIT, VERSION } from "../../version.ts";
import { printJson, printText } from "../output.ts";

export const versionLine = (program: string): string => `${program} ${VERSION} (${COMMIT})`;

export default defineCommand({
  meta: { name: "version", description: "Print version and commit" },
  args: { json: { type: "boolean", default: false, description: "print machine-readable JSON" } },
  run({ args }) {
    if (args.json) printJson({ name: "outpost-agent", version: VERSION, commit: COMMIT, bun: Bun.version });
    else printText(versionLine("outpost-agent"));
  },
});
