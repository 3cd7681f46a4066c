/**
 * The agent CLI as a user runs it: `bun bin/agent.ts …` in a subprocess,
 * checking stdout, stderr and exit codes. Online cases talk to a control
 * plane (real HTTP over the unix socket) backed by a fake AgentApi; offline
 * cases open the state dir with the real in-process Agent.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../../test/fakes/agent-api.ts";
import { statePaths } from "../../config.ts";
import { ControlClient } from "../../control/client.ts";
import { type ControlPlane, startControlPlane } from "../../control/server.ts";
import { initKeys, KEY_FILES } from "../../crypto/keys.ts";
import { StoreError } from "../../errors.ts";

const AGENT = join(import.meta.dir, "../../../bin/agent.ts");

async function agent(...args: string[]) {
  const proc = Bun.spawn([process.execPath, AGENT, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-cli-"));
});
afterEach(() => {
  rmSync(stateDir, { recursive: true, force: true });
});

describe("online (running agent)", () => {
  let api: FakeAgentApi;
  let plane: ControlPlane;
  beforeEach(async () => {
    api = new FakeAgentApi();
    plane = await startControlPlane({ api, stateDir });
  });
  afterEach(async () => {
    await plane.stop();
  });

  test("status --json prints AgentStatus exactly", async () => {
    const r = await agent("status", "--state", stateDir, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(JSON.stringify(api.status())));
  });

  test("status renders health, update info and the content table", async () => {
    const r = await agent("status", "--state", stateDir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("pid 4242, up 1h2m");
    expect(r.stdout).toMatch(/health\s+GREEN/);
    expect(r.stdout).toMatch(/repo\s+\/srv\/repo \(group public-1\)/);
    expect(r.stdout).toMatch(/TYPE\s+VERSION\s+SIGNED\s+INSTALLED\s+LKG\s+HANDLER\s+BAD/);
    expect(r.stdout).toMatch(/Hmpa_data\s+3\s+2024-07-19T04:09:00.000Z\s+\S+\s+2\s+loaded\s+-/);
  });

  test("content list --json and update go to the running agent", async () => {
    const list = await agent("content", "list", "--state", stateDir, "--json");
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual(api.items);

    const update = await agent("update", "--state", stateDir, "--json");
    expect(update.code).toBe(0);
    expect(JSON.parse(update.stdout)).toEqual(api.report);
    expect(api.calls.map((c) => c.op)).toEqual(["content", "update"]);
  });

  test("an update that rejected content prints the report and exits 3", async () => {
    api.report = {
      ...api.report,
      ok: false,
      installed: [],
      rejected: [
        {
          at: "t",
          type: "Hmpa_data",
          file: "Hmpa_data-4.opkg",
          code: "SIG_EXPIRED",
          reason: "signer expired",
        },
      ],
    };
    const r = await agent("update", "--state", stateDir);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/result\s+FAILED/);
    expect(r.stdout).toMatch(/Hmpa_data\s+SIG_EXPIRED\s+Hmpa_data-4.opkg\s+signer expired/);
  });

  test("rollback: success, and STORE_NO_LKG → exit 3 with the server's code", async () => {
    const ok = await agent("content", "rollback", "Hmpa_data", "--state", stateDir, "--json");
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).version).toBe(2);

    api.failNext.set("rollback", new StoreError("STORE_NO_LKG", "Hmpa_data: no last-known-good content"));
    const refused = await agent("content", "rollback", "Hmpa_data", "--state", stateDir);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toBe("error STORE_NO_LKG: Hmpa_data: no last-known-good content\n");
    expect(refused.stdout).toBe("");
  });

  test("content ack goes to the running agent; --json prints the AckResult", async () => {
    const r = await agent("content", "ack", "Hmpa_data", "--state", stateDir, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ type: "Hmpa_data", acknowledged: null });
    expect(api.calls).toContainEqual({ op: "ack", args: ["Hmpa_data"] });
  });

  test("hmpa check is routed through the control plane", async () => {
    api.answer = (_type, _method, args) => ({
      thumbprint: (args as { thumbprint: string }).thumbprint,
      allowed: true,
    });
    const r = await agent("hmpa", "check", "StackPivot:abc", "--state", stateDir, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ thumbprint: "StackPivot:abc", allowed: true });
    expect(api.calls).toEqual([
      { op: "call", args: ["Hmpa_data", "check", { thumbprint: "StackPivot:abc" }] },
    ]);
  });

  test("--repo without --once is a usage error", async () => {
    const r = await agent("update", "--state", stateDir, "--repo", "/srv/x");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error CLI_USAGE:");
    expect(api.calls).toEqual([]);
  });
});

describe("offline (no agent running)", () => {
  test("update without --once needs the agent: exit 4", async () => {
    const r = await agent("update", "--state", stateDir, "--json");
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout).error.code).toBe("CTL_NOT_RUNNING");
  });

  test("content list opens the state dir in-process", async () => {
    const r = await agent("content", "list", "--state", stateDir, "--json");
    expect(r.code).toBe(0);
    const items = JSON.parse(r.stdout);
    // Every registered content type is listed; nothing is installed yet.
    expect(items).toContainEqual(
      expect.objectContaining({ type: "Hmpa_data", version: null, handlerState: "not-installed" }),
    );
    expect(items.every((c: { version: unknown }) => c.version === null)).toBe(true);
    // The in-process agent released its lock.
    expect(existsSync(statePaths(stateDir).lock)).toBe(false);
  });

  test("status says it is an offline view", async () => {
    const r = await agent("status", "--state", stateDir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("not running (offline view)");
  });

  test("a state dir locked by an unreachable agent: exit 4, never shared", async () => {
    writeFileSync(statePaths(stateDir).lock, `${process.pid}\n`);
    const r = await agent("content", "list", "--state", stateDir);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("error AGENT_LOCKED:");
  });

  test("content ack offline with nothing to acknowledge: exit 0, says so", async () => {
    const r = await agent("content", "ack", "Hmpa_data", "--state", stateDir);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("Hmpa_data: no automatic rollback to acknowledge\n");
  });

  test("rollback with nothing installed: exit 3", async () => {
    const r = await agent("content", "rollback", "Hmpa_data", "--state", stateDir);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("STORE_NO_LKG");
  });

  test("unknown content type: exit 2", async () => {
    const r = await agent("content", "rollback", "Nope", "--state", stateDir, "--json");
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe("HND_UNKNOWN_TYPE");
  });

  test("update --once: missing trust store is a config error (2), an empty repo a failed cycle (3)", async () => {
    const repo = join(stateDir, "repo");
    const noTrust = await agent(
      "update",
      "--once",
      "--state",
      join(stateDir, "s"),
      "--repo",
      repo,
      "--trust",
      join(stateDir, "none.pem"),
    );
    expect(noTrust.code).toBe(2);
    expect(noTrust.stderr).toContain("error CFG_TRUST_STORE:");

    const keys = join(stateDir, "keys");
    await initKeys(keys);
    const r = await agent(
      "update",
      "--once",
      "--json",
      "--state",
      join(stateDir, "s"),
      "--repo",
      repo,
      "--trust",
      join(keys, KEY_FILES.rootCert),
    );
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ ok: false, index: "failed", repo });
    expect(report.rejected[0].code).toBe("UPD_NOT_FOUND");
  });

  test("a broken config file: exit 2 naming the file", async () => {
    const cfg = join(stateDir, "agent.json");
    writeFileSync(cfg, JSON.stringify({ update: { group: "Not Valid" } }));
    const r = await agent("content", "list", "--config", cfg);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error CFG_INVALID: ${cfg}: update.group`);
  });
});

test("run: advertises the control plane, serves it, stops cleanly on SIGTERM", async () => {
  const proc = Bun.spawn(
    [
      process.execPath,
      AGENT,
      "run",
      "--state",
      stateDir,
      "--repo",
      join(stateDir, "repo"),
      "--trust",
      "/nonexistent.pem",
    ],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
  );
  try {
    const reader = proc.stdout.getReader();
    let firstLine = "";
    while (!firstLine.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      firstLine += new TextDecoder().decode(value);
    }
    const line = JSON.parse(firstLine.split("\n")[0]!);
    expect(line).toMatchObject({ level: "info", msg: "agent running", pid: proc.pid, stateDir });
    expect(line.control).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const client = await ControlClient.fromStateDir(stateDir);
    const status = await client.status();
    expect(status.agent.pid).toBe(proc.pid);
    expect(status.content.map((c) => c.type)).toContain("Hmpa_data");
    // Start-up's garbage is collected once the agent is quiet (quietMs 2 s), with or without Bun's GC timer.
    const collected = async () => /outpost_process_idle_collections_total [1-9]/.test(await client.metrics());
    const deadline = Date.now() + 20_000;
    while (!(await collected()) && Date.now() < deadline) await Bun.sleep(250);
    expect(await collected()).toBe(true);
  } catch (e) {
    // A failed assertion must not leave a running agent behind.
    proc.kill("SIGKILL");
    throw e;
  }
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
  const paths = statePaths(stateDir);
  expect(existsSync(paths.controlInfo)).toBe(false);
  expect(existsSync(paths.lock)).toBe(false);
});

test("run: a SIGTERM while it still starts lets the start finish, then stops cleanly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "outpost-cli-early-"));
  const proc = Bun.spawn(
    [
      process.execPath,
      AGENT,
      "run",
      "--state",
      dir,
      "--repo",
      join(dir, "repo"),
      "--trust",
      "/nonexistent.pem",
    ],
    { stdout: "ignore", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
  );
  const paths = statePaths(dir);
  try {
    // The lock is taken when the agent starts its content, well before its services and control
    // plane are up: a stop now used to kill it half started, the lock left behind.
    const deadline = Date.now() + 20_000;
    while (!existsSync(paths.lock) && proc.exitCode === null && Date.now() < deadline) await Bun.sleep(5);
    expect(existsSync(paths.lock)).toBe(true);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(existsSync(paths.lock)).toBe(false);
    expect(existsSync(paths.controlInfo)).toBe(false);
  } finally {
    if (proc.exitCode === null) proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
