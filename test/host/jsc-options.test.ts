/**
 * Host processes start with JavaScriptCore options (core/jsc-options.ts:
 * tier-up thresholds raised, no pre-faulted heap blocks). The options must
 * reach the host, and the runtime must know them: one it does not know
 * stops a Bun process from starting at all, so build.ts refuses an
 * executable that does not start with them.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jscOptionsRefused } from "../../build.ts";
import { parseConfig } from "../../core/config.ts";
import { HostManager } from "../../core/host/manager.ts";
import { AGENT_RUNTIME_ENV } from "../../core/jsc-options.ts";
import { log } from "../../core/log.ts";
import { defaultRegistry } from "../../handlers/index.ts";
import { environOf } from "../fixtures/environ.ts";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "outpost-jsc-options-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("JavaScriptCore options of host processes", () => {
  test("a host process runs with every option, and the supervisor's own BUN_JSC_* do not leak in", async () => {
    const dir = tempDir();
    process.env.BUN_JSC_useJIT = "1"; // a supervisor-side JSC option: hostEnv passes only OUTPOST_*
    try {
      const config = parseConfig({ stateDir: dir });
      const manager = new HostManager({
        registry: defaultRegistry(),
        log: log.child({ component: "test" }),
        config: config.hosts,
        stateDir: dir,
        emit() {},
        onContentFailure: async () => null,
      });
      try {
        await manager.warm("scanner");
        const pid = manager.hosts().find((h) => h.group === "scanner")?.pid;
        expect(typeof pid).toBe("number");
        const env = environOf(pid as number);
        for (const [k, v] of Object.entries(AGENT_RUNTIME_ENV)) expect(env[k]).toBe(v);
        expect(env.BUN_JSC_useJIT).toBeUndefined();
        // MIMALLOC_SCAVENGER=0 in effect: no allocator scavenger thread (test/host/supervisor-jsc.test.ts
        // has the control: a supervisor without the options runs one).
        const threads = readdirSync(`/proc/${pid}/task`).map((t) => {
          try {
            return readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim();
          } catch {
            return "";
          }
        });
        expect(threads).not.toContain("mi-scavenger");
      } finally {
        await manager.unloadAll();
      }
    } finally {
      delete process.env.BUN_JSC_useJIT;
    }
  }, 30_000);

  test("the runtime that runs the sources knows every option; a misspelled one would stop it", () => {
    const run = (env: Record<string, string>) =>
      Bun.spawnSync([process.execPath, "-e", "0"], {
        env: { PATH: process.env.PATH ?? "", ...env },
        stderr: "pipe",
      });
    expect(run({ ...AGENT_RUNTIME_ENV }).exitCode).toBe(0);
    const misspelled = run({ BUN_JSC_thresholdForJITAfterWarmUpp: "5000" });
    expect(misspelled.exitCode).not.toBe(0);
    expect(misspelled.stderr.toString()).toContain("invalid JSC environment variable");
  });

  test("build.ts: an executable that does not start with the options is refused, naming why", async () => {
    const dir = tempDir();
    const refusing = join(dir, "agent");
    writeFileSync(
      refusing,
      '#!/bin/sh\n[ -n "$BUN_JSC_thresholdForJITAfterWarmUp" ] && { echo "error: invalid JSC environment variable" >&2; exit 1; }\nexit 0\n',
    );
    chmodSync(refusing, 0o755);
    const why = await jscOptionsRefused(refusing);
    expect(why).toContain("core/jsc-options.ts");
    expect(why).toContain("invalid JSC environment variable");
    expect(await jscOptionsRefused(process.execPath)).toBeNull();
  });
});
