/**
 * `agent install`: installs this agent as a systemd service (as root).
 * Logic in core/install/; layout and unit in docs/install.md.
 */
import { defineCommand } from "citty";
import { InstallError } from "../../errors.ts";
import { install } from "../../install/install.ts";
import { printJson, printText } from "../output.ts";
import { type RemoveIncompatible, wiredRemoveIncompatible } from "./session.ts";

async function requireRemoval(): Promise<RemoveIncompatible> {
  const run = await wiredRemoveIncompatible();
  if (!run)
    throw new InstallError("INST_NO_CRT", "this executable has no incompatible-software handler (CRT)");
  return run;
}

export default defineCommand({
  meta: {
    name: "install",
    description:
      "Install the agent: system user, /opt/outpost binaries, /etc/outpost config + trust, /var/lib/outpost state, outpost.service (idempotent; root)",
  },
  args: {
    root: {
      type: "string",
      default: "/",
      valueHint: "DIR",
      description:
        "install into DIR as if it were / (an image or test tree; DIR/etc/passwd is edited, never the real /etc); the service is enabled and started only when DIR is / and systemd is PID 1",
    },
    repo: {
      type: "string",
      valueHint: "URL",
      description: "content repository written to agent.json (update.repo)",
    },
    group: { type: "string", description: "update group written to agent.json (update.group)" },
    trust: {
      type: "string",
      valueHint: "ROOT.pem",
      description: "trusted roots, copied to /etc/outpost/root.pem",
    },
    "tenant-token": {
      type: "string",
      valueHint: "FILE",
      description:
        "tenant fleet token, copied to /etc/outpost/tenant-token (0600) and set as fleet.tokenFile",
    },
    binary: {
      type: "string",
      valueHint: "FILE",
      description: "agent executable to install (default: this executable; from a source tree, a launcher)",
    },
    "remove-incompatible": {
      type: "boolean",
      default: false,
      description:
        "first fetch CRT content from the repo and remove the incompatible software it names from this host (apt-get remove, systemctl disable --now); with --dry-run, only list it",
    },
    "dry-run": { type: "boolean", default: false, description: "print what would change; change nothing" },
    json: { type: "boolean", default: false, description: "print machine-readable JSON" },
  },
  async run({ args }) {
    const report = await install({
      root: args.root,
      repo: args.repo,
      group: args.group,
      trust: args.trust,
      tenantToken: args["tenant-token"],
      binary: args.binary,
      dryRun: args["dry-run"],
      removeIncompatible: args["remove-incompatible"] ? await requireRemoval() : undefined,
    });
    if (args.json) return printJson(report);
    const verb = report.dryRun ? "would change" : "changed";
    const lines = [`install into ${report.root}: ${report.changes.length} ${verb}`];
    for (const c of report.changes)
      lines.push(`  ${c.action.padEnd(6)} ${c.path}${c.detail ? `  ${c.detail}` : ""}`);
    lines.push(`binary: ${report.binary.kind} (${report.binary.source})`);
    lines.push(
      report.service.state === "started"
        ? `service: outpost.service started and healthy in ${report.service.ms} ms`
        : `service: not started (${report.service.reason})`,
    );
    if (report.incompatible) lines.unshift(...renderIncompatible(report.incompatible));
    printText(lines.join("\n"));
  },
});

interface FindingView {
  rule: string;
  title: string;
  actions: {
    action: { kind: string; package?: string; unit?: string };
    state: string;
    refusal?: { rule: string; why: string };
    error?: string;
  }[];
}

function renderIncompatible(r: Record<string, unknown>): string[] {
  const findings = (r.findings as FindingView[] | undefined) ?? [];
  const out = [
    `incompatible software (CRT v${r.version}): ${findings.length} rule(s) matched${r.dryRun ? " (dry run: nothing removed)" : ""}`,
  ];
  for (const f of findings) {
    out.push(`  ${f.rule}: ${f.title}`);
    for (const a of f.actions) {
      const why = a.refusal
        ? ` — refused: ${a.refusal.why} (${a.refusal.rule})`
        : a.error
          ? ` — ${a.error}`
          : "";
      out.push(`    ${a.state.padEnd(11)} ${a.action.kind} ${a.action.package ?? a.action.unit ?? ""}${why}`);
    }
  }
  return out;
}
