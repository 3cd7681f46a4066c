/**
 * `contentctl release token TENANT`: makes a random heartbeat token for a
 * tenant and prints it with the SHA-256 that goes into the release config
 * (`fleet.tenants.TENANT.tokenSha256`). Only the hash is stored vendor-side;
 * the token goes to the tenant's agents (`agent enroll --tenant-token FILE`).
 * With --operator NAME it makes a console operator token instead
 * (`console.operators.NAME.tokenSha256`).
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
    tenant: {
      type: "positional",
      required: true,
      description: "Tenant name (operator name with --operator)",
    },
    operator: {
      type: "boolean",
      default: false,
      description: "Make a console operator token for NAME instead",
    },
    json: { type: "boolean", default: false, description: "Print {tenant, token, tokenSha256} as JSON" },
  },
  run({ args }) {
    if (args.operator) return operatorToken(args.tenant, args.json);
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

function operatorToken(name: string, json: boolean) {
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) {
    throw new ConfigError(
      "CFG_INVALID_ARGUMENT",
      `NAME must match /^[A-Za-z0-9._@-]{1,64}$/, got ${JSON.stringify(name)}`,
    );
  }
  const token = randomBytes(32).toString("base64url");
  const result = { operator: name, token, tokenSha256: sha256Hex(new TextEncoder().encode(token)) };
  if (json) printJson(result);
  else
    printText(
      `token        ${token}\ntokenSha256  ${result.tokenSha256}\n\nrelease config: "console": { "operators": { "${name}": { "tokenSha256": "${result.tokenSha256}" } } }`,
    );
  return result;
}
