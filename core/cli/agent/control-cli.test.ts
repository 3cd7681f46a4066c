/**
 * The control-plane subcommands as a user runs them (the compiled `agent …`
 * in a subprocess, test/fixtures/compiled.ts; OUTPOST_TEST_CLI=source runs
 * `bun bin/agent.ts`): events, metrics, handlers call, openapi — against a
 * real control plane (unix socket) over a fake AgentApi and a real
 * EventBus.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeAgentApi } from "../../../test/fakes/agent-api.ts";
import { cliCommand } from "../../../test/fixtures/compiled.ts";
import { EventBus } from "../../agent/events.ts";
import { type ControlPlane, startControlPlane } from "../../control/server.ts";

const ENV = { ...process.env, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" };

/** The agent CLI; compiled, it starts in a fraction of the CPU the source tree needs (~14 runs here). */
let agentCommand: string[];
beforeAll(async () => {
  agentCommand = await cliCommand("agent");
}, 300_000);

function spawnAgent(...args: string[]) {
  return Bun.spawn([...agentCommand, ...args], { stdout: "pipe", stderr: "pipe", env: ENV });
}

async function agent(...args: string[]) {
  const proc = spawnAgent(...args);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
}

/** Reads stdout line by line as the process writes it. */
function lines(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let all = "";
  return {
    async next(): Promise<string> {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended; got ${JSON.stringify(all)}`);
        const text = decoder.decode(value, { stream: true });
        buffer += text;
        all += text;
      }
      const i = buffer.indexOf("\n");
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      return line;
    },
    async rest(): Promise<string> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return buffer;
        buffer += decoder.decode(value, { stream: true });
      }
    },
  };
}

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "outpost-ctlcli-"));
});
afterEach(() => {
  rmSync(stateDir, { recursive: true, force: true });
});

describe("with a running agent", () => {
  let api: FakeAgentApi;
  let bus: EventBus;
  let plane: ControlPlane | undefined;
  beforeEach(async () => {
    api = new FakeAgentApi();
    bus = new EventBus(100, { firstId: 500 });
    plane = await startControlPlane({ api, stateDir, events: bus });
  });
  afterEach(async () => {
    await plane?.stop();
    plane = undefined;
  });

  test("events: held events as text lines, or JSON lines with ids; --tail", async () => {
    bus.emit("update-rejected", { contentType: "Hmpa_data", code: "SIG_EXPIRED", reason: "signer expired" });
    bus.emit("content-installed", { contentType: "Hmpa_data", version: 3, previousVersion: 2 });
    const text = await agent("events", "--state", stateDir);
    expect(text.code).toBe(0);
    const rows = text.stdout.trimEnd().split("\n");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(
      /^\S+Z {2}update-rejected {2}contentType=Hmpa_data {2}code=SIG_EXPIRED {2}reason="signer expired"$/,
    );
    expect(rows[1]).toMatch(/content-installed {2}contentType=Hmpa_data {2}version=3 {2}previousVersion=2$/);

    const json = await agent("events", "--state", stateDir, "--json", "--tail", "1");
    expect(json.code).toBe(0);
    const parsed = json.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(parsed).toEqual([
      { id: 501, event: expect.objectContaining({ type: "content-installed", version: 3 }) },
    ]);
  });

  test("events --follow prints live events; Ctrl-C ends it with exit 0", async () => {
    const proc = spawnAgent("events", "--follow", "--json", "--state", stateDir);
    const out = lines(proc.stdout);
    // The CLI is subscribed once the server holds its stream.
    const deadline = performance.now() + 10_000;
    while (bus.subscriberCount < 2 && performance.now() < deadline) await Bun.sleep(5);
    bus.emit("host-restarted", { group: "scanner", restarts: 1 });
    expect(JSON.parse(await out.next())).toEqual({
      id: 500,
      event: expect.objectContaining({ type: "host-restarted", group: "scanner" }),
    });
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(0);
  });

  test("events --follow: the agent going away is exit 4 with the id to resume from", async () => {
    bus.emit("a");
    const proc = spawnAgent("events", "--follow", "--state", stateDir);
    const out = lines(proc.stdout);
    expect(await out.next()).toMatch(/ {2}a$/);
    await plane!.stop();
    plane = undefined;
    expect(await proc.exited).toBe(4);
    expect(await new Response(proc.stderr).text()).toContain(
      "error CTL_NOT_RUNNING: the agent closed the event stream (stopping?); resume with --since 500",
    );
  });

  test("events --since resumes; a lost range is a warning on stderr (a gap object with --json)", async () => {
    for (const t of ["a", "b", "c"]) bus.emit(t);
    const resumed = await agent("events", "--state", stateDir, "--since", "501", "--json");
    expect(
      resumed.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).id),
    ).toEqual([502]);
    const lost = await agent("events", "--state", stateDir, "--since", "7");
    expect(lost.code).toBe(0);
    expect(lost.stderr).toContain("warning: events after 7 are no longer held by the agent");
    const lostJson = await agent("events", "--state", stateDir, "--since", "7", "--json");
    expect(JSON.parse(lostJson.stdout.split("\n")[0]!)).toEqual({
      gap: { lastEventId: 7, oldestAvailable: 500 },
    });
    const bad = await agent("events", "--state", stateDir, "--since", "x");
    expect(bad.code).toBe(2);
  });

  test("metrics: Prometheus text, or parsed families with --json", async () => {
    const text = await agent("metrics", "--state", stateDir);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("# TYPE outpost_process_resident_memory_bytes gauge");
    const json = await agent("metrics", "--state", stateDir, "--json");
    expect(json.code).toBe(0);
    const families = JSON.parse(json.stdout) as { name: string; type: string; samples: unknown[] }[];
    expect(families.find((f) => f.name === "outpost_build_info")).toMatchObject({ type: "gauge" });
  });

  test("handlers call: JSON args in, result out; bad JSON is a usage error", async () => {
    const r = await agent(
      "handlers",
      "call",
      "Hmpa_data",
      "check",
      '{"thumbprint":"StackPivot:3f"}',
      "--state",
      stateDir,
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      echo: { type: "Hmpa_data", method: "check", args: { thumbprint: "StackPivot:3f" } },
    });
    const wrapped = await agent("handlers", "call", "Hmpa_data", "info", "--state", stateDir, "--json");
    expect(JSON.parse(wrapped.stdout)).toEqual({
      result: { echo: { type: "Hmpa_data", method: "info", args: null } },
    });
    const bad = await agent("handlers", "call", "Hmpa_data", "check", "{nope", "--state", stateDir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error CLI_USAGE: ARGS is not valid JSON");
  });

  test("openapi: the running agent's document", async () => {
    const r = await agent("openapi", "--state", stateDir);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toContain("/v1/events");
  });
});

describe("without a running agent", () => {
  test("events and metrics need the agent: exit 4", async () => {
    for (const cmd of ["events", "metrics"]) {
      const r = await agent(cmd, "--state", stateDir, "--json");
      expect(r.code).toBe(4);
      expect(JSON.parse(r.stdout).error.code).toBe("CTL_NOT_RUNNING");
    }
  });

  test("openapi is generated in-process", async () => {
    const r = await agent("openapi", "--state", stateDir);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/status", "/metrics", "/v1/events"]));
  });

  test("--help explains the new commands", async () => {
    const r = await agent("events", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--follow");
    expect(r.stdout).toContain("--since");
    const top = await agent("--help");
    for (const cmd of ["events", "metrics", "handlers", "openapi"]) expect(top.stdout).toContain(cmd);
  });
});
