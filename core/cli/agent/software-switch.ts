/**
 * `agent software-switch FILE`: installs a new agent executable into the
 * idle A/B slot, flips to it, and keeps it only if it proves healthy within
 * the deadline; otherwise the previous slot is restored (core/install/slots.ts,
 * docs/install.md "Software updates").
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { InstallError } from "../../errors.ts";
import { requireRoot } from "../../install/install.ts";
import { recover, switchSoftware, versionProbe } from "../../install/slots.ts";
import { restartService, serviceProbe, systemdIsPid1 } from "../../install/systemd.ts";
import { printJson, printText } from "../output.ts";

export default defineCommand({
  meta: {
    name: "software-switch",
    description:
      "Switch to a new agent executable in the idle A/B slot; restore the old one unless it is healthy in time",
  },
  args: {
    file: { type: "positional", required: false, description: "the new agent executable" },
    root: {
      type: "string",
      default: "/",
      valueHint: "DIR",
      description: "installation root (as for agent install)",
    },
    "deadline-seconds": {
      type: "string",
      default: "30",
      description: "time the new agent has to prove healthy",
    },
    recover: {
      type: "boolean",
      default: false,
      description: "only restore the previous slot if an interrupted switch is past its deadline",
    },
    json: { type: "boolean", default: false, description: "print machine-readable JSON" },
  },
  async run({ args }) {
    requireRoot();
    const root = resolve(args.root);
    if (args.recover) {
      const r = recover(root);
      if (args.json) return printJson({ recovered: r !== null, record: r });
      return printText(r ? `restored ${r.from} (${r.reason})` : "nothing to recover");
    }
    if (!args.file) throw new InstallError("INST_INPUT", "software-switch needs FILE (or --recover)");
    const deadline = Number(args["deadline-seconds"]);
    if (!Number.isFinite(deadline) || deadline <= 0) {
      throw new InstallError(
        "INST_INPUT",
        `--deadline-seconds: ${args["deadline-seconds"]} is not a positive number`,
      );
    }
    const file = resolve(args.file);
    // A live service is restarted onto the new slot and must answer its control plane; elsewhere
    // (an image, CI) the new executable must start and answer `version --json`.
    const live = root === "/" && systemdIsPid1();
    const out = await switchSoftware(root, readFileSync(file), {
      deadlineMs: deadline * 1000,
      probe: live ? serviceProbe() : versionProbe(root),
      afterRestore: live ? restartService : undefined,
    });
    if (args.json) printJson(out);
    else
      printText(
        out.ok
          ? `switched ${out.from} → ${out.to}: healthy in ${out.ms} ms`
          : `${out.to} was not healthy (${out.reason}); ${out.from} restored in ${out.ms} ms, build marked bad`,
      );
    if (!out.ok) process.exitCode = 3;
  },
});
