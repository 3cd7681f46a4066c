/**
 * `contentctl release …` and `contentctl serve --release` as an operator
 * runs them: a config file, packages beside it, JSON and table output, and
 * the serving process with its fleet endpoint and console.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArgsDef, type CommandDef, runCommand } from "citty";
import { setAgentWiring } from "../../core/cli/agent/session.ts";
import { sha256Hex } from "../../core/crypto/digest.ts";
import { isOutpostError } from "../../core/errors.ts";
import { publish, readRepoIndex } from "../../core/repo/publish.ts";
import { captureStdio } from "../../core/stdio.ts";
import { testRegistry } from "../../test/fixtures/text-handler.ts";
import { makeVendor, type Vendor } from "../../test/fixtures/vendor.ts";
import type { ReleaseView } from "../views.ts";
import release from "./release.ts";
import abort from "./release-abort.ts";
import audit from "./release-audit.ts";
import close from "./release-close.ts";
import promote from "./release-promote.ts";
import start from "./release-start.ts";
import status from "./release-status.ts";
import tick from "./release-tick.ts";
import token from "./release-token.ts";

setDefaultTimeout(30_000);

let vendor: Vendor;
let dir: string;
let cfg: string;
const OPERATOR = "operator-console-token-0123456789";

beforeAll(async () => {
  // What bin/contentctl.ts wires: release start validates with these handlers (here the test type).
  setAgentWiring({ registry: () => testRegistry() });
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-release-cli-"));
  mkdirSync(join(dir, "packages"));
  cfg = join(dir, "release.json");
  writeFileSync(
    cfg,
    JSON.stringify({
      repo: vendor.repo,
      keys: vendor.keysDir,
      stateDir: "state",
      groups: [
        { name: "eng-test", promote: "manual", soakMinutes: 60 },
        { name: "internal", promote: "manual", soakMinutes: 60 },
        { name: "public-1", promote: "auto", soakMinutes: 60 },
      ],
      console: { operators: { alice: { tokenSha256: sha256Hex(new TextEncoder().encode(OPERATOR)) } } },
    }),
  );
  const v1 = await vendor.pack(
    "TestText",
    1,
    { "data.txt": "one" },
    { now: new Date(Date.now() - 3600_000) },
  );
  for (const g of ["eng-test", "internal", "public-1"]) {
    await publish({
      repo: vendor.repo,
      group: g,
      keys: vendor.keysDir,
      packageBytes: v1,
      now: new Date(Date.now() - 3600_000),
    });
  }
  writeFileSync(
    join(dir, "packages", "TestText-2.tar"),
    await vendor.pack("TestText", 2, { "data.txt": "two" }),
  );
});
afterAll(() => {
  vendor.cleanup();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  process.exitCode = 0;
});

async function run<T extends ArgsDef>(
  cmd: CommandDef<T>,
  rawArgs: string[],
): Promise<{ out: string; result: unknown }> {
  const { result, stdout } = await captureStdio(() => runCommand(cmd, { rawArgs }));
  return { out: stdout, result: result.result };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const port = s.port ?? 1;
  await s.stop(true);
  return port;
}

describe("contentctl release", () => {
  test("start takes the package beside the config and publishes to the first group", async () => {
    const { out } = await run(start, ["TestText", "2", "--config", cfg, "--json"]);
    const view = JSON.parse(out) as ReleaseView;
    expect(view).toMatchObject({ id: "TestText-2", status: "active" });
    expect(view.groups.map((g) => g.phase)).toEqual(["live", "pending", "pending"]);
    expect(view.next[0]).toContain("awaiting manual promotion to internal");
  });

  test("status shows groups, versions and the release table", async () => {
    const { out } = await run(status, ["--config", cfg]);
    expect(out).toMatch(/eng-test\s+manual\s+60 min\s+0\s+TestText v2/);
    expect(out).toMatch(/internal\s+manual\s+60 min\s+0\s+TestText v1/);
    expect(out).toMatch(/release\s+TestText v2 \(TestText-2\)/);
    expect(out).toMatch(/eng-test\s+live/);
  });

  test("tick with no fleet data promotes nothing; promote waits for soak and health unless forced with a reason; abort does what it says; all audited", async () => {
    const t = JSON.parse((await run(tick, ["--config", cfg, "--json"])).out) as {
      actions: unknown[];
      notes: { text: string }[];
    };
    expect(t.actions).toEqual([]);
    expect(t.notes[0]?.text).toContain("awaiting manual promotion");
    const refusal = async (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e) => (isOutpostError(e) ? e.code : String(e)),
      );
    expect(await refusal(run(promote, ["--config", cfg]))).toBe("REL_SOAKING");
    expect(await refusal(run(promote, ["--config", cfg, "--force"]))).toBe("REL_FORCE_REASON");
    const p = JSON.parse(
      (
        await run(promote, [
          "--config",
          cfg,
          "--force",
          "--reason",
          "hotfix for INC-7",
          "--operator",
          "alice",
          "--json",
        ])
      ).out,
    ) as ReleaseView;
    expect(p.groups.map((g) => g.phase)).toEqual(["live", "live", "pending"]);
    const a = JSON.parse(
      (await run(abort, ["--config", cfg, "--reason", "test abort", "--json"])).out,
    ) as ReleaseView;
    expect(a).toMatchObject({
      status: "aborted",
      abort: { reason: "test abort", by: "operator", revertVersion: 3 },
    });
    expect(a.groups.map((g) => g.phase)).toEqual(["reverted", "reverted", "untouched"]);
    const trail = JSON.parse((await run(audit, ["--config", cfg, "--json"])).out) as {
      actor: string;
      action: string;
      reason: string;
      group?: string;
    }[];
    expect(trail.map((r) => r.action)).toEqual(["start", "force-promote", "abort"]);
    expect(trail[1]).toMatchObject({ actor: "alice", reason: "hotfix for INC-7", group: "internal" });
    expect(trail[2]?.actor).toStartWith("cli:");
    expect((await run(audit, ["--config", cfg])).out).toMatch(
      /alice\s+force-promote\s+TestText-2\s+internal\s+hotfix for INC-7/,
    );
  });

  test("close finishes a stuck active release without touching any group, and is audited", async () => {
    writeFileSync(
      join(dir, "packages", "TestText-4.tar"),
      // Signing times have 1 s resolution: sign after the revert the previous test published this second (R11).
      await vendor.pack("TestText", 4, { "data.txt": "four" }, { now: new Date(Date.now() + 1500) }),
    );
    await run(start, ["TestText", "4", "--config", cfg]);
    const refusal = async (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e) => (isOutpostError(e) ? e.code : String(e)),
      );
    expect(await refusal(run(close, ["--config", cfg, "--reason", " "]))).toBe("REL_CLOSE_REASON");
    const c = JSON.parse(
      (await run(close, ["--config", cfg, "--reason", "sample never filled", "--json"])).out,
    ) as ReleaseView;
    expect(c.status).toBe("closed");
    expect(c.groups.slice(1).map((g) => g.phase)).toEqual(["untouched", "untouched"]);
    // Nothing is taken back: eng-test keeps listing v4.
    expect(readRepoIndex(vendor.repo, "eng-test")?.content.TestText?.version).toBe(4);
    expect(await refusal(run(close, ["--config", cfg, "--reason", "again"]))).toBe("REL_NO_ACTIVE");
    const trail = JSON.parse(
      (await run(audit, ["--config", cfg, "--release", "TestText-4", "--json"])).out,
    ) as { action: string }[];
    expect(trail.map((r) => r.action)).toEqual(["start", "close"]);
  });

  test("refusals carry REL_ codes", async () => {
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        return isOutpostError(e) ? e.code : String(e);
      }
      return "ok";
    };
    expect(await code(run(promote, ["--config", cfg]))).toBe("REL_NO_ACTIVE");
    expect(await code(run(start, ["TestText", "2", "--config", cfg]))).toBe("REL_VERSION_NOT_NEWER");
    expect(await code(run(start, ["TestText", "x", "--config", cfg]))).toBe("CFG_INVALID_ARGUMENT");
    expect(await code(run(status, ["--config", join(dir, "missing.json")]))).toBe("CFG_NOT_FOUND");
    // Release state status cannot read is an error, never an empty "no releases".
    const fresh = join(dir, "fresh.json");
    writeFileSync(
      fresh,
      JSON.stringify({ repo: vendor.repo, keys: vendor.keysDir, stateDir: "fresh-state" }),
    );
    expect(await code(run(status, ["--config", fresh]))).toBe("REL_STATE_MISSING");
    const closed = `postgres://outpost@127.0.0.1:${await closedPort()}/none`;
    expect(await code(run(status, ["--config", cfg, "--db", closed]))).toBe("REL_DB_UNREACHABLE");
    expect(await code(run(status, ["--config", cfg, "--db", "mysql://x"]))).toBe("REL_DB_URL");
  });

  test("token makes a tenant token and the hash the config wants", async () => {
    const r = JSON.parse((await run(token, ["acme", "--json"])).out) as {
      token: string;
      tokenSha256: string;
    };
    expect(r.token.length).toBeGreaterThanOrEqual(32);
    expect(r.tokenSha256).toBe(sha256Hex(new TextEncoder().encode(r.token)));
  });

  test("the parent command lists its subcommands", () => {
    expect(Object.keys(release.subCommands as object)).toEqual([
      "start",
      "promote",
      "abort",
      "status",
      "tick",
      "token",
      "close",
      "audit",
    ]);
  });
});

describe("contentctl serve --release", () => {
  test("serves the repo, the fleet endpoint and the console, and stops cleanly on SIGTERM", async () => {
    const script = [
      `import { runMain } from "citty";`,
      `import serve from ${JSON.stringify(join(import.meta.dir, "serve.ts"))};`,
      `await runMain(serve, { rawArgs: JSON.parse(process.env.SERVE_ARGS) });`,
    ].join("\n");
    const proc = Bun.spawn([process.execPath, "-e", script], {
      cwd: join(import.meta.dir, "../.."),
      env: {
        ...process.env,
        OUTPOST_LOG_QUIET: "1",
        SERVE_ARGS: JSON.stringify(["--repo", vendor.repo, "--port", "0", "--release", cfg]),
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const reader = proc.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve exited early: ${await new Response(proc.stderr).text()}`);
        text += new TextDecoder().decode(value);
      }
      const line = JSON.parse(text.slice(0, text.indexOf("\n"))) as {
        url: string;
        fleet: string;
        console: string;
      };
      expect(line.fleet).toBe(`${line.url}fleet/heartbeat`);
      expect((await fetch(`${line.url}groups/eng-test/index.json`)).status).toBe(200);
      // The console needs an operator: without a login it sends a browser to the form.
      expect((await fetch(line.console, { redirect: "manual" })).status).toBe(303);
      const page = await fetch(line.console, { headers: { authorization: `Bearer ${OPERATOR}` } });
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("TestText v3");
      expect((await fetch(line.fleet, { method: "POST", body: "{}" })).status).toBe(401);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      proc.kill("SIGKILL");
    }
  });

  test("refuses a --repo that is not the release config's repository", async () => {
    const { default: serve } = await import("./serve.ts");
    try {
      await run(serve, ["--repo", dir, "--port", "0", "--release", cfg]);
      throw new Error("expected a refusal");
    } catch (e) {
      expect(isOutpostError(e) && e.code).toBe("CFG_INVALID_ARGUMENT");
    }
  });
});
