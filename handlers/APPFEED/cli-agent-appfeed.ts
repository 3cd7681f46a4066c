/**
 * `agent appfeed run [--json]`: runs the APPFEED and USERAPPFEED rules now.
 * With a running agent, its feed applies the results (as after a package
 * change); without one, an in-process agent loads the rules (which runs
 * them), applies their exclusions to the state dir and stops — so
 * `agent exclusions` shows them after an offline `agent update --once`.
 *
 * `agent appfeed trust-tenant ROOT.pem`: tells the agent which tenant key
 * signs USERAPPFEED rules (docs/exclusions.md). The root goes into the
 * appfeed group's work directory only — the one place the USERAPPFEED
 * handler looks, and nothing else does — so it is trusted for that type
 * and no other. The vendor's own root is refused here: vendor-signed
 * USERAPPFEED rules must never pass as the administrator's.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import {
  agentArgs,
  connectIfRunning,
  loadAgentConfig,
  withOfflineAgent,
} from "../../core/cli/agent/session.ts";
import { printJson, printText, UsageError } from "../../core/cli/output.ts";
import { TrustStore } from "../../core/crypto/cms.ts";
import { describeError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { shareWithAgentUser } from "../../core/host/sandbox.ts";
import type { AppfeedRun } from "../_shared/appfeed/engine.ts";
import { groupWorkDir } from "../_shared/lua/keys.ts";
import { APPFEED_TYPES, AppfeedFeed } from "./feed.ts";

type RunOutcome = { type: string; run?: AppfeedRun; error?: { code: string; message: string } };

function brief(o: RunOutcome) {
  if (!o.run) return { type: o.type, error: o.error };
  return {
    type: o.type,
    version: o.run.version,
    ranAt: o.run.ranAt,
    ...(o.run.held ? { held: o.run.held } : {}),
    apps: o.run.apps.map((a) => ({
      id: a.id,
      file: a.file,
      outcome: a.outcome,
      exclusions: a.exclusions.length,
      ...(a.error ? { error: a.error } : {}),
    })),
  };
}

const run = defineCommand({
  meta: { name: "run", description: "Run the APPFEED and USERAPPFEED rules now and apply their exclusions" },
  args: agentArgs,
  async run({ args }) {
    const config = loadAgentConfig(args);
    const ask = (call: (t: string, m: string) => Promise<unknown>, method: string) =>
      Promise.all(
        APPFEED_TYPES.map(async (type): Promise<RunOutcome> => {
          try {
            return { type, run: (await call(type, method)) as AppfeedRun };
          } catch (e) {
            const d = describeError(e);
            return { type, error: { code: d.code, message: d.message } };
          }
        }),
      );
    const client = await connectIfRunning(config.stateDir);
    let outcomes: RunOutcome[];
    let mode: "online" | "offline";
    if (client) {
      mode = "online";
      outcomes = await ask((t, m) => client.call(t, m, {}), "run");
    } else {
      mode = "offline";
      // Loading the content runs the rules; the feed applies what they found, then stops.
      outcomes = await withOfflineAgent(config, async (agent) => {
        const feed = new AppfeedFeed(agent, { watchDirs: [] });
        await feed.start();
        feed.stop();
        return ask((t, m) => agent.call(t, m, {}), "results");
      });
    }
    const out = { mode, runs: outcomes.map(brief) };
    if (args.json) printJson(out);
    else {
      const lines: string[] = [];
      for (const r of out.runs) {
        if (!("apps" in r) || !r.apps) {
          lines.push(`${r.type}: ${r.error?.code}: ${r.error?.message}`);
          continue;
        }
        lines.push(`${r.type} v${r.version}:`);
        if (r.held) lines.push(`  held, its rules do not run: ${r.held.code}: ${r.held.message}`);
        for (const a of r.apps)
          lines.push(
            `  ${a.id.padEnd(24)} ${a.outcome.padEnd(9)} ${a.exclusions} exclusion(s)${a.error ? `  ${a.error}` : ""}`,
          );
      }
      printText(lines.join("\n"));
    }
    return out;
  },
});

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
    if (root) shareWithAgentUser(target, config.hosts.user);
    const out = { installed: target, roots: tenant.roots.map((r) => r.subject) };
    if (args.json) printJson(out);
    else printText(`USERAPPFEED now trusts ${out.roots.join(", ")}\n  ${target}`);
    return out;
  },
});

export default defineCommand({
  meta: {
    name: "appfeed",
    description: "Application-detection rules (APPFEED, USERAPPFEED): run them now, trust the tenant key",
  },
  subCommands: { run, "trust-tenant": trustTenant },
});
