import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const MODULE = join(import.meta.dir, "schema-mode.ts");

/** zod's global config after interpretSchemasForOneShot(argv), in a fresh process (it is process-wide). */
function modeFor(argv: string[]): { switched: boolean; jitless: boolean } {
  const script = `
    const { config } = await import("zod");
    const { interpretSchemasForOneShot } = await import(${JSON.stringify(MODULE)});
    const switched = interpretSchemasForOneShot(${JSON.stringify(argv)});
    console.log(JSON.stringify({ switched, jitless: config().jitless === true }));
  `;
  const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return JSON.parse(r.stdout.toString());
}

describe("zod mode by command (core/cli/schema-mode.ts)", () => {
  test("one-shot commands parse interpreted", () => {
    expect(modeFor(["scan", "--state", "/s", "/tmp/x"])).toEqual({ switched: true, jitless: true });
    expect(modeFor(["--json", "status"])).toEqual({ switched: true, jitless: true });
    expect(modeFor([])).toEqual({ switched: true, jitless: true });
  });

  test("the agent and its host processes keep compiled schemas", () => {
    expect(modeFor(["run", "--config", "/etc/outpost/agent.json"])).toEqual({
      switched: false,
      jitless: false,
    });
    expect(modeFor(["host", "--group", "scanner"])).toEqual({ switched: false, jitless: false });
  });
});
