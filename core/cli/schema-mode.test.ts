import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const MODULE = join(import.meta.dir, "schema-mode.ts");

/** zod's global config and the env after interpretSchemasForOneShot(argv, env), in a fresh process (it is process-wide). */
function modeFor(
  argv: string[],
  env: Record<string, string> = {},
): { switched: boolean; jitless: boolean; env: Record<string, string> } {
  const script = `
    const { config } = await import("zod");
    const { interpretSchemasForOneShot } = await import(${JSON.stringify(MODULE)});
    const env = ${JSON.stringify(env)};
    const switched = interpretSchemasForOneShot(${JSON.stringify(argv)}, env);
    console.log(JSON.stringify({ switched, jitless: config().jitless === true, env }));
  `;
  const r = Bun.spawnSync([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return JSON.parse(r.stdout.toString());
}

const ONE_SHOT = { OUTPOST_ONE_SHOT_SUPERVISOR: "1" };

describe("zod mode by command (core/cli/schema-mode.ts)", () => {
  test("one-shot commands parse interpreted, and mark the hosts they start", () => {
    expect(modeFor(["scan", "--state", "/s", "/tmp/x"])).toEqual({
      switched: true,
      jitless: true,
      env: ONE_SHOT,
    });
    expect(modeFor(["--json", "status"])).toEqual({ switched: true, jitless: true, env: ONE_SHOT });
    expect(modeFor([])).toEqual({ switched: true, jitless: true, env: ONE_SHOT });
  });

  test("a host started by a one-shot command parses interpreted too", () => {
    expect(modeFor(["host", "--group", "scanner"], ONE_SHOT)).toEqual({
      switched: true,
      jitless: true,
      env: ONE_SHOT,
    });
  });

  test("the agent and the hosts it supervises keep compiled schemas, even with the mark inherited", () => {
    expect(modeFor(["run", "--config", "/etc/outpost/agent.json"], ONE_SHOT)).toEqual({
      switched: false,
      jitless: false,
      env: {},
    });
    expect(modeFor(["host", "--group", "scanner"])).toEqual({ switched: false, jitless: false, env: {} });
  });
});
