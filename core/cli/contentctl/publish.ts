/**
 * `contentctl publish --repo REPO --group G --keys KEYS FILE…`: copies signed
 * packages into a static repository and re-signs the group's index (serial + 1
 * per package, in the order given). Refuses a lower version than the group
 * lists unless --allow-downgrade. A package that is refused stops the run:
 * those before it stay published, the error names the file.
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
    file: {
      type: "positional",
      required: true,
      description: "Package file (from contentctl pack); several publish in order",
    },
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
    // citty keeps one positional as `file` and every positional in `_`: a second package must not be
    // dropped without a word, as it was.
    const files = (args._ as string[]).length > 0 ? (args._ as string[]) : args.file ? [args.file] : [];
    if (files.length === 0) throw new ConfigError("CFG_INVALID_ARGUMENT", "publish needs a package FILE");
    let index: Awaited<ReturnType<typeof publish>> | undefined;
    for (const packageFile of files) {
      index = await publish({
        repo: args.repo,
        group: args.group,
        keys: args.keys,
        packageFile,
        expiresInDays: parseDays(args["expires-days"]),
        allowDowngrade: args["allow-downgrade"],
      });
    }
    printText(args.json ? `${JSON.stringify(index, null, 2)}\n` : formatIndex(index!));
    return index;
  },
});
