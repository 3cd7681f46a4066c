/**
 * `agent appfeed trust-tenant ROOT.pem`: tells the agent which tenant key
 * signs USERAPPFEED rules (docs/exclusions.md). The root goes into the
 * appfeed group's work directory only — the one place the USERAPPFEED
 * handler looks, and nothing else does — so it is trusted for that type
 * and no other. The vendor's own root is refused here: vendor-signed
 * USERAPPFEED rules must never pass as the administrator's.
 */
import { chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { agentArgs, loadAgentConfig } from "../../core/cli/agent/session.ts";
import { printJson, printText, UsageError } from "../../core/cli/output.ts";
import { TrustStore } from "../../core/crypto/cms.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { resolveAgentIdentity } from "../../core/host/sandbox.ts";
import { groupWorkDir } from "../_shared/lua/keys.ts";
import { TENANT_ROOT_FILE } from "../_shared/tenant/signature.ts";

const trustTenant = defineCommand({
  meta: {
    name: "trust-tenant",
    description: "Trust a tenant root certificate for USERAPPFEED rules only (not the vendor's root)",
  },
  args: {
    ...agentArgs,
    file: { type: "positional", required: true, description: "the tenant's root.pem (contentctl keys init)" },
  },
  run({ args }) {
    const config = loadAgentConfig(args);
    const file = resolve(args.file);
    const pem = readFileSync(file, "utf8");
    const tenant = TrustStore.fromPem(pem, file);
    const vendorFile = config.update.trust;
    if (vendorFile && existsSync(vendorFile)) {
      const vendor = TrustStore.fromPem(readFileSync(vendorFile, "utf8"), vendorFile);
      const fp = (s: TrustStore) => new Set(s.roots.map((r) => Buffer.from(r.rawData).toString("base64")));
      const v = fp(vendor);
      if ([...fp(tenant)].some((r) => v.has(r))) {
        throw new UsageError(
          "CLI_USAGE",
          `${file}: is the vendor's trust root (${vendorFile}); a tenant key must be the tenant's own`,
        );
      }
    }
    const dir = groupWorkDir(config.stateDir, "appfeed");
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const target = resolve(dir, TENANT_ROOT_FILE);
    // Readable by the appfeed host whether it runs as the agent user or (unreachable work dir) as root.
    const root = process.getuid?.() === 0;
    atomicWriteFile(target, pem, root ? 0o640 : 0o600);
    if (root) chownSync(target, 0, resolveAgentIdentity(config.hosts.user ?? "outpost").gid);
    const out = { installed: target, roots: tenant.roots.map((r) => r.subject) };
    if (args.json) printJson(out);
    else printText(`USERAPPFEED now trusts ${out.roots.join(", ")}\n  ${target}`);
    return out;
  },
});

export default defineCommand({
  meta: { name: "appfeed", description: "Application-detection rules (APPFEED, USERAPPFEED): tenant trust" },
  subCommands: { "trust-tenant": trustTenant },
});
