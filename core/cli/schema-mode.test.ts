import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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

describe("the agent's entry point (bin/agent.ts) applies it", () => {
  const ENTRY = join(import.meta.dir, "../../bin/agent.ts");
  /** zod's mode when `agent host` (from source, stdin closed: it exits at once) is done. */
  function hostMode(env: Record<string, string>): boolean {
    const dir = mkdtempSync(join(tmpdir(), "outpost-schema-mode-"));
    try {
      const probe = join(dir, "probe.js");
      const out = join(dir, "jitless.json");
      // A file, not stdout: a host's stdout is its channel to the supervisor.
      writeFileSync(
        probe,
        `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(out)}, JSON.stringify(globalThis.__zod_globalConfig?.jitless === true)));`,
      );
      const r = Bun.spawnSync([process.execPath, "--preload", probe, ENTRY, "host", "--group", "scanner"], {
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
        env: { PATH: process.env.PATH ?? "", ...env },
      });
      if (r.exitCode !== 0) throw new Error(r.stderr.toString());
      return JSON.parse(readFileSync(out, "utf8"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test("to a host process: interpreted when a one-shot command started it, compiled under `agent run`", () => {
    expect(hostMode(ONE_SHOT)).toBe(true);
    expect(hostMode({})).toBe(false);
  });
});
