/**
 * `contentctl flags set --tenant T --repo REPO --keys KEYS FLAG on|off`: the
 * Flags Service. Writes the flag's word into the tenant's signed policy
 * bundle (serial + 1); a feature turns on only where the agent's Flags
 * Supplement also says `available`.
 */
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { FLAG_NAME_RE } from "../../core/effective/flags.ts";
import { ConfigError } from "../../core/errors.ts";
import { updateTenantBundle } from "../_shared/tenant/bundle.ts";

export default defineCommand({
  meta: { name: "set", description: "Set a flag on or off for a tenant (the Flags Service)" },
  args: {
    flag: { type: "positional", required: true, description: "Flag name, e.g. onAccessBlock" },
    value: { type: "positional", required: true, description: "on | off" },
    tenant: { type: "string", required: true, description: "Tenant, e.g. acme" },
    repo: { type: "string", required: true, description: "Repository folder the fleet service serves" },
    keys: {
      type: "string",
      required: true,
      description: "Key directory (signer.pem/.key, intermediate.pem, root.pem)",
    },
    json: { type: "boolean", default: false, description: "Print the tenant's flags as JSON" },
  },
  async run({ args }) {
    if (!FLAG_NAME_RE.test(args.flag)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `flag ${JSON.stringify(args.flag)}: lowerCamelCase letters and digits`,
      );
    }
    if (args.value !== "on" && args.value !== "off") {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `flag value must be on or off, got ${JSON.stringify(args.value)}`,
      );
    }
    const value = args.value;
    const bundle = await updateTenantBundle(
      { repo: args.repo, tenant: args.tenant, keys: args.keys },
      (b) => {
        b.flags[args.flag] = value;
      },
    );
    if (args.json) printJson({ tenant: bundle.tenant, serial: bundle.serial, flags: bundle.flags });
    else printText(`tenant ${bundle.tenant}: ${args.flag} ${value} (bundle serial ${bundle.serial})`);
  },
});
