/**
 * `contentctl pack --type T --version N --keys KEYS --out FILE DIR`: signs
 * DIR's files as one content package (docs/package-format.md), after the
 * agent's own handler for T accepted and loaded them in its sandboxed host
 * (validate.ts; there is no way to skip that).
 */
import { defineCommand } from "citty";
import { sha384Hex } from "../../crypto/digest.ts";
import { loadSigningKeys } from "../../crypto/keys.ts";
import { ConfigError } from "../../errors.ts";
import { atomicWriteFile } from "../../fsutil.ts";
import { packDirectory } from "../../package/pack.ts";
import { printJson, printText } from "../output.ts";
import { runPackCheck } from "./pack-checks.ts";
import { validatePayloadDir } from "./validate.ts";

export default defineCommand({
  meta: {
    name: "pack",
    description:
      "Build a signed content package from a directory of payload files, once the agent's own handler for the type has validated and loaded them in its sandboxed host",
  },
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
    // Source checks name the file and line of a bad rule; then the agent's own handler, in its sandboxed
    // host, must accept and load the payload before it is signed.
    await runPackCheck(args.type, args.dir);
    const validated = await validatePayloadDir({ type: args.type, version, dir: args.dir });
    const keys = await loadSigningKeys(args.keys);
    const bytes = await packDirectory({ type: args.type, version, keys, dir: args.dir });
    atomicWriteFile(args.out, bytes);
    const result = {
      file: args.out,
      type: args.type,
      version,
      sha384: sha384Hex(bytes),
      size: bytes.length,
      validated: { group: validated.group, ms: validated.ms },
    };
    if (args.json) printJson(result);
    else
      printText(
        `validated by the ${result.type} handler in a sandboxed ${validated.group} host (${validated.ms} ms)\n` +
          `wrote ${result.file}: ${result.type} version ${result.version}, ${result.size} bytes, sha384 ${result.sha384}`,
      );
    return result;
  },
});
