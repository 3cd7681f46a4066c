/**
 * `contentctl keys init --dir KEYS [--force] [--json]`: creates the content
 * signing PKI (root CA, intermediate CA, short-lived signer) and prints the
 * files with the SHA-256 fingerprints of the certificates, so the operator
 * can record the root fingerprint that agents will pin.
 */
import { defineCommand } from "citty";
import { DEFAULT_SIGNER_VALIDITY_DAYS, describeKeyDir, initKeys, KEY_FILES } from "../../crypto/keys.ts";
import { ConfigError } from "../../errors.ts";
import { printJson, printText, renderTable } from "../output.ts";

const init = defineCommand({
  meta: {
    name: "init",
    description: "Create a root CA, an intermediate CA and a short-lived content signer (ECDSA P-384)",
  },
  args: {
    dir: { type: "string", required: true, description: "Key directory to create" },
    force: { type: "boolean", default: false, description: "Replace keys already in the directory" },
    name: {
      type: "string",
      default: "Outpost",
      description: "Organisation name used in the certificate subjects",
    },
    "signer-days": {
      type: "string",
      default: String(DEFAULT_SIGNER_VALIDITY_DAYS),
      description: "Validity of the signer certificate in days",
    },
    json: { type: "boolean", default: false, description: "Print {dir, files[]} as JSON" },
  },
  async run({ args }) {
    const days = args["signer-days"];
    if (!/^[1-9][0-9]{0,4}$/.test(days)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `--signer-days must be a positive integer, got ${JSON.stringify(days)}`,
      );
    }
    await initKeys(args.dir, { force: args.force, name: args.name, signerValidityDays: Number(days) });
    const files = await describeKeyDir(args.dir);
    const result = { dir: args.dir, files };
    if (args.json) {
      printJson(result);
    } else {
      printText(
        renderTable(
          ["FILE", "KIND", "SHA-256", "NOT AFTER"],
          files.map((f) => [f.path, f.kind, f.sha256, f.notAfter]),
        ),
      );
      printText(
        `\nAgents trust ${KEY_FILES.rootCert}; keep ${KEY_FILES.rootKey} and ${KEY_FILES.intermediateKey} offline.`,
      );
    }
    return result;
  },
});

export default defineCommand({
  meta: { name: "keys", description: "Manage content signing keys" },
  subCommands: { init },
});
