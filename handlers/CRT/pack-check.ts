/**
 * `contentctl pack --type CRT`: rules.json is parsed and every rule checked
 * (CRT-G1, G2, G4) before anything is signed; when the packing machine has
 * a dpkg database, CRT-G3 is checked against it too, so a rule removing a
 * package Debian marks required is refused here rather than on every host.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { parseRulesText, RULES_FILE } from "./format.ts";
import { assertSafe, dpkgRefusal } from "./guard.ts";

export function checkCrtSources(dir: string): void {
  const file = join(dir, RULES_FILE);
  if (!existsSync(file)) throw new HandlerError("CRT_INVALID", `${file}: missing`, { file });
  let rules: ReturnType<typeof parseRulesText>;
  try {
    rules = parseRulesText(readFileSync(file, "utf8"));
    assertSafe(rules);
  } catch (e) {
    if (e instanceof HandlerError)
      throw new HandlerError(e.code, e.message.replace(RULES_FILE, file), { file, details: e.details });
    throw e;
  }
  if (!Bun.which("dpkg-query")) return;
  for (const rule of rules) {
    for (const a of rule.actions) {
      if (a.kind !== "apt-remove") continue;
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
      const r = Bun.spawnSync(["dpkg-query", "-W", "-f=${Priority}\\t${Essential}", a.package], {
        stdout: "pipe",
        stderr: "ignore",
      });
      if (r.exitCode !== 0) continue; // not known here: the run-time check decides on the host
      const [priority = "", essential = ""] = r.stdout.toString().split("\t");
      const refusal = dpkgRefusal(rule.id, a.package, {
        installed: true,
        priority,
        essential: essential === "yes",
      });
      if (refusal) {
        throw new HandlerError(
          "CRT_TARGETS_ESSENTIAL",
          `${file}: rule ${rule.id}: ${a.package} ${refusal.why} (${refusal.rule})`,
          {
            file,
            details: { refusals: [refusal] },
          },
        );
      }
    }
  }
}
