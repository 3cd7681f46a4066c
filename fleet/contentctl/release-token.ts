/**
 * `contentctl release token TENANT`: makes a random heartbeat token for a
 * tenant and prints it with the SHA-256 that goes into the release config
 * (`fleet.tenants.TENANT.tokenSha256`). Only the hash is stored vendor-side;
 * the token goes to the tenant's agents (`fleet.tokenFile`).
 */
import { randomBytes } from "node:crypto";
import { defineCommand } from "citty";
import { TENANT_RE } from "../../core/agent/heartbeat-protocol.ts";
import { printJson, printText } from "../../core/cli/output.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { ConfigError } from "../../core/errors.ts";

export default defineCommand({
  meta: {
    name: "token",
    description: "Make a fleet heartbeat token for a tenant (prints token and its SHA-256)",
  },
  args: {
    tenant: { type: "positional", required: true, description: "Tenant name" },
    json: { type: "boolean", default: false, description: "Print {tenant, token, tokenSha256} as JSON" },
  },
  run({ args }) {
    if (!TENANT_RE.test(args.tenant)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `TENANT must match ${TENANT_RE}, got ${JSON.stringify(args.tenant)}`,
      );
    }
    const token = randomBytes(32).toString("base64url");
    const result = { tenant: args.tenant, token, tokenSha256: sha256Hex(new TextEncoder().encode(token)) };
    if (args.json) printJson(result);
    else
      printText(
        `token        ${token}\ntokenSha256  ${result.tokenSha256}\n\nrelease config: "fleet": { "tenants": { "${args.tenant}": { "tokenSha256": "${result.tokenSha256}" } } }\nagent config:   "fleet": { "tenant": "${args.tenant}", "tokenFile": "/etc/outpost/fleet.token", "url": "https://…/fleet/heartbeat" }`,
      );
    return result;
  },
});
