/**
 * `contentctl publish --repo REPO --group G --keys KEYS FILE`: copies a signed
 * package into a static repository and re-signs the group's index (serial + 1).
 * Refuses a lower version than the group lists unless --allow-downgrade.
 */
import { defineCommand } from "citty";
import { ConfigError } from "../../errors.ts";
import { publish } from "../../repo/publish.ts";
import { printText } from "../output.ts";
import { formatIndex, parseDays } from "./repo-args.ts";

export default defineCommand({
  meta: {
    name: "publish",
    description: "Publish a content package to a repository group and re-sign its index",
  },
  args: {
    file: { type: "positional", required: true, description: "Package file (from contentctl pack)" },
    repo: {
      type: "string",
      required: true,
      description: "Repository folder (served as-is by any HTTP server)",
    },
    group: { type: "string", required: true, description: "Release group, e.g. stable" },
    keys: {
      type: "string",
      required: true,
      description: "Key directory (signer.pem/.key, intermediate.pem, root.pem)",
    },
    "expires-days": { type: "string", description: "Days until the index expires (default 7)" },
    "allow-downgrade": {
      type: "boolean",
      default: false,
      description: "Publish even if the group lists a higher version of this type",
    },
    json: { type: "boolean", default: false, description: "Print the new index as JSON" },
  },
  async run({ args }) {
    if (!args.file) throw new ConfigError("CFG_INVALID_ARGUMENT", "publish needs a package FILE");
    const index = await publish({
      repo: args.repo,
      group: args.group,
      keys: args.keys,
      packageFile: args.file,
      expiresInDays: parseDays(args["expires-days"]),
      allowDowngrade: args["allow-downgrade"],
    });
    printText(args.json ? `${JSON.stringify(index, null, 2)}\n` : formatIndex(index));
    return index;
  },
});
