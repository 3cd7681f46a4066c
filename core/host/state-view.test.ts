import { describe, expect, test } from "bun:test";
import type { SandboxSpec } from "./policy.ts";
import { buildLaunch, type LaunchTools } from "./sandbox.ts";
import { foldLaunch, stateView } from "./state-view.ts";

const tools = { unshare: "/usr/bin/unshare", mount: "/usr/bin/mount", sh: "/usr/bin/sh" };
const spec = { fsRead: [], fsWrite: [] };

describe("state view: the wrapper in front of a host's launch", () => {
  test("root: one unshare creates the mount and the network namespace (one exec fewer per host start)", () => {
    const view = stateView({ spec, stateDir: "/s", workDir: "/s/hosts/g", supervisorUid: 0, tools });
    const rest = [
      "/usr/bin/unshare",
      "--net",
      "--",
      "/usr/bin/setpriv",
      "--reuid=65534",
      "--",
      "agent",
      "host",
    ];
    const prefix = foldLaunch(view.prefix, rest);
    expect(prefix.slice(0, 6)).toEqual([
      "/usr/bin/unshare",
      "--net",
      "--mount",
      "--propagation",
      "private",
      "--",
    ]);
    expect(prefix.slice(6, 8)).toEqual(["/usr/bin/sh", "-c"]);
    expect(prefix.slice(-5)).toEqual(["outpost-state-view", "/s", "/s/hosts/g", "hidden", "-"]);
    expect(rest).toEqual(["/usr/bin/setpriv", "--reuid=65534", "--", "agent", "host"]);
    expect([...prefix, ...rest].filter((w) => w === "/usr/bin/unshare")).toHaveLength(1);
  });

  test("the same through buildLaunch's real argv: its netns wrapper is taken off, the rest kept in order", () => {
    const launchTools: LaunchTools = {
      unshare: "/usr/bin/unshare",
      setpriv: "/usr/bin/setpriv",
      prlimit: "/usr/bin/prlimit",
    };
    const l = buildLaunch({
      base: ["/opt/agent", "host", "--group", "g"],
      spec: {
        group: "g",
        runAs: "agent",
        fsRead: [],
        fsWrite: [],
        exec: false,
        net: "none",
        agent: false,
        capabilities: [],
      } satisfies SandboxSpec,
      supervisorUid: 0,
      identity: { uid: 65534, gid: 65534, user: "nobody" },
      cpuSeconds: 60,
      tools: launchTools,
    });
    expect(l.argv.slice(0, 3)).toEqual(["/usr/bin/unshare", "--net", "--"]);
    const at = l.argv.indexOf("/usr/bin/prlimit");
    expect(l.argv.slice(at, at + 4)).toEqual(["/usr/bin/prlimit", "--cpu=60:65", "--core=0", "--"]);
    const kept = l.argv.filter((_, i) => i >= 3 && (i < at || i >= at + 4));
    const view = stateView({ spec, stateDir: "/s", workDir: "/s/hosts/g", supervisorUid: 0, tools });
    const prefix = foldLaunch(view.prefix, l.argv);
    // The view's unshare makes the network namespace, its shell sets the CPU limit (soft:hard).
    expect(prefix[1]).toBe("--net");
    expect(prefix.at(-1)).toBe("60:65");
    expect(l.argv).toEqual(kept);
    expect(l.argv.at(-4)).toBe("/opt/agent");
  });

  test("nothing to fold: a launch without a network namespace, or no view (not root), stays as it was", () => {
    const view = stateView({ spec, stateDir: "/s", workDir: "/s/hosts/g", supervisorUid: 0, tools });
    const rest = ["/usr/bin/setpriv", "--", "agent"];
    expect(foldLaunch(view.prefix, rest)).toEqual(view.prefix);
    expect(rest).toEqual(["/usr/bin/setpriv", "--", "agent"]);
    const none = stateView({ spec, stateDir: "/s", workDir: "/s/hosts/g", supervisorUid: 1000, tools });
    expect(none.prefix).toEqual([]);
    const netOnly = ["/usr/bin/unshare", "--net", "--", "agent"];
    expect(foldLaunch(none.prefix, netOnly)).toEqual([]);
    expect(netOnly).toEqual(["/usr/bin/unshare", "--net", "--", "agent"]);
  });
});
