/**
 * `contentctl policy set --tenant T --repo REPO --keys KEYS FILE.xml`: the
 * management console's side. Checks the document as an agent will (X1–X4),
 * then puts it in the tenant's signed policy bundle (version + 1 for that
 * document, serial + 1 for the bundle). Agents pick it up on their next
 * update cycle.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { DOCUMENT_NAME_RE } from "../../core/effective/bundle.ts";
import { ConfigError } from "../../core/errors.ts";
import { updateTenantBundle } from "../_shared/tenant/bundle.ts";
import { parsePolicyXml } from "./xml.ts";

export default defineCommand({
  meta: {
    name: "set",
    description: "Publish a tenant policy document (XML) in the tenant's signed policy bundle",
  },
  args: {
    file: { type: "positional", required: true, description: "Policy document (XML, no DOCTYPE)" },
    tenant: { type: "string", required: true, description: "Tenant, e.g. acme" },
    repo: { type: "string", required: true, description: "Repository folder the fleet service serves" },
    keys: {
      type: "string",
      required: true,
      description: "Key directory (signer.pem/.key, intermediate.pem, root.pem)",
    },
    name: { type: "string", description: "Document name agents see (default: the file's name)" },
    json: { type: "boolean", default: false, description: "Print the bundle summary as JSON" },
  },
  async run({ args }) {
    const name = args.name ?? basename(args.file);
    if (!DOCUMENT_NAME_RE.test(name)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `document name ${JSON.stringify(name)}: letters, digits, . _ - and ending in .xml`,
      );
    }
    const xml = readFileSync(args.file, "utf8");
    parsePolicyXml(args.file, xml);
    let version = 1;
    const bundle = await updateTenantBundle(
      { repo: args.repo, tenant: args.tenant, keys: args.keys },
      (b) => {
        const prev = b.documents.find((d) => d.name === name);
        version = (prev?.version ?? 0) + 1;
        b.documents = [...b.documents.filter((d) => d.name !== name), { name, version, xml }];
      },
    );
    const summary = {
      tenant: bundle.tenant,
      serial: bundle.serial,
      document: name,
      version,
      documents: bundle.documents.length,
    };
    if (args.json) printJson(summary);
    else
      printText(`tenant ${summary.tenant}: ${name} v${version} published (bundle serial ${summary.serial})`);
  },
});
