/**
 * `agent install`: installs this agent as a systemd service (as root).
 * Logic in core/install/; layout and unit in docs/install.md.
 */
import { defineCommand } from "citty";
import { install } from "../../install/install.ts";
import { printJson, printText } from "../output.ts";

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
    printText(lines.join("\n"));
  },
});
