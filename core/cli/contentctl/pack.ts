/**
 * `contentctl pack --type T --version N --keys KEYS --out FILE DIR`: signs
 * DIR's files as one content package (docs/package-format.md).
 */
import { defineCommand } from "citty";
import { sha384Hex } from "../../crypto/digest.ts";
import { loadSigningKeys } from "../../crypto/keys.ts";
import { ConfigError } from "../../errors.ts";
import { atomicWriteFile } from "../../fsutil.ts";
import { packDirectory } from "../../package/pack.ts";
import { printJson, printText } from "../output.ts";
import { runPackCheck } from "./pack-checks.ts";

export default defineCommand({
  meta: { name: "pack", description: "Build a signed content package from a directory of payload files" },
  args: {
    dir: { type: "positional", required: true, description: "Directory whose regular files become payload/" },
    type: { type: "string", required: true, description: "Content type, e.g. Hmpa_data" },
    version: { type: "string", required: true, description: "Content version (positive integer)" },
    keys: {
      type: "string",
      required: true,
      description: "Key directory holding signer.pem, signer.key, intermediate.pem",
    },
    out: { type: "string", required: true, description: "Package file to write" },
    json: {
      type: "boolean",
      default: false,
      description: "Print {file, type, version, sha384, size} as JSON",
    },
  },
  async run({ args }) {
    // Number() would take "1e3", "0x10" or "" (0); a version is what a person typed, digits only.
    if (!/^[1-9][0-9]{0,15}$/.test(args.version)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `--version must be a positive integer, got ${JSON.stringify(args.version)}`,
      );
    }
    const version = Number(args.version);
    await runPackCheck(args.type, args.dir);
    const keys = await loadSigningKeys(args.keys);
    const bytes = await packDirectory({ type: args.type, version, keys, dir: args.dir });
    atomicWriteFile(args.out, bytes);
    const result = { file: args.out, type: args.type, version, sha384: sha384Hex(bytes), size: bytes.length };
    if (args.json) printJson(result);
    else
      printText(
        `wrote ${result.file}: ${result.type} version ${result.version}, ${result.size} bytes, sha384 ${result.sha384}`,
      );
    return result;
  },
});
