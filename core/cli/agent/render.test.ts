import { describe, expect, test } from "bun:test";
import { FakeAgentApi } from "../../../test/fakes/agent-api.ts";
import type { HostStatus } from "../../agent/api.ts";
import { renderHostsTable, renderStatus } from "./render.ts";

function host(overrides: Partial<HostStatus> = {}): HostStatus {
  return {
    group: "hmpa",
    isolation: "process",
    state: "running",
    pid: 4321,
    uid: 65534,
    user: "nobody",
    handlers: ["Hmpa_data"],
    restarts: 0,
    crashesInWindow: 0,
    lastCrash: null,
    startedAt: "2024-07-19T04:09:00.000Z",
    layers: {
      uidDrop: true,
      capabilities: true,
      netns: true,
      landlockFs: true,
      landlockNet: true,
      landlockScope: true,
      rlimits: true,
      noNewPrivs: true,
      memory: "watchdog",
    },
    notes: [],
    limits: { memoryBytes: 512 * 1024 * 1024, cpuSeconds: 600 },
    usage: { rssBytes: 45.3 * 1024 * 1024, cpuSeconds: 1.5 },
    ...overrides,
  };
}

describe("agent status: host processes", () => {
  test("one aligned row per host: state, pid, user, handlers, restarts, memory against its limit, last crash", () => {
    const text = renderHostsTable([
      host(),
      host({
        group: "scanner",
        state: "crash-looping",
        pid: null,
        handlers: ["DatasetA", "LocalRepData"],
        restarts: 3,
        usage: null,
        lastCrash: {
          at: "2024-07-19T04:10:00.000Z",
          pid: 99,
          reason: "crashed",
          detail: "",
          code: null,
          signal: "SIGSEGV",
          during: "load DatasetA v7",
          stderrTail: [],
        },
      }),
    ]);
    const [head, hmpa, scanner] = text.split("\n");
    expect(head).toMatch(/^HOST\s+STATE\s+PID\s+USER\s+HANDLERS\s+RESTARTS\s+RSS\/LIMIT MB\s+LAST CRASH$/);
    expect(hmpa).toMatch(/^hmpa\s+running\s+4321\s+nobody\s+Hmpa_data\s+0\s+45\/512\s+-$/);
    expect(scanner).toMatch(
      /^scanner\s+crash-looping\s+-\s+nobody\s+DatasetA,LocalRepData\s+3\s+-\s+2024-07-19T04:10:00.000Z crashed \(SIGSEGV\) during load DatasetA v7$/,
    );
    // Columns line up: every row's STATE starts where the header's does.
    const col = head!.indexOf("STATE");
    expect(hmpa!.slice(col).startsWith("running")).toBe(true);
    expect(scanner!.slice(col).startsWith("crash-looping")).toBe(true);
  });

  test("the status view includes the hosts table only when the agent reports hosts", () => {
    const status = new FakeAgentApi().status();
    expect(renderStatus(status)).not.toContain("HOST ");
    const withHosts = renderStatus({ ...status, hosts: [host()] });
    expect(withHosts).toMatch(/\nHOST\s+STATE/);
    expect(withHosts.indexOf("HOST ")).toBeGreaterThan(withHosts.indexOf("TYPE "));
  });
});
