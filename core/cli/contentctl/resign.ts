/**
 * `contentctl resign --repo REPO --group G --keys KEYS`: re-signs a group's
 * index with a new serial and expiry, content unchanged. Run it well before
 * `expires` (agents refuse an expired index).
 */
import { defineCommand } from "citty";
import { resign } from "../../repo/publish.ts";
import { printText } from "../output.ts";
import { formatIndex, parseDays } from "./repo-args.ts";

export default defineCommand({
  meta: { name: "resign", description: "Refresh a group index's expiry (bumps its serial)" },
  args: {
    repo: { type: "string", required: true, description: "Repository folder" },
    group: { type: "string", required: true, description: "Release group, e.g. stable" },
    keys: {
      type: "string",
      required: true,
      description: "Key directory (signer.pem/.key, intermediate.pem, root.pem)",
    },
    "expires-days": { type: "string", description: "Days until the index expires (default 7)" },
    json: { type: "boolean", default: false, description: "Print the new index as JSON" },
  },
  async run({ args }) {
    const index = await resign({
      repo: args.repo,
      group: args.group,
      keys: args.keys,
      expiresInDays: parseDays(args["expires-days"]),
    });
    printText(args.json ? `${JSON.stringify(index, null, 2)}\n` : formatIndex(index));
    return index;
  },
});
