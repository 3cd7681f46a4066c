import { describe, expect, test } from "bun:test";
import { handlerPrivilegeViolations } from "../build.ts";
import { processesOf, registryViolations } from "../core/host/policy.ts";
import { builtinGroups } from "./groups.ts";
import { GROUP_MODULES, groupsOfProcess, registryForGroup } from "./host-registry.ts";
import { builtinHandlers, defaultRegistry } from "./index.ts";

describe("built-in host groups", () => {
  test("every built-in handler fits its group (G1 at build time; build.ts refuses otherwise)", async () => {
    expect(registryViolations(defaultRegistry()).map((e) => e.message)).toEqual([]);
    expect(await handlerPrivilegeViolations()).toEqual([]);
  });

  test("the issue's groups exist with the issue's shape", () => {
    const g = new Map(builtinGroups.map((x) => [x.name, x]));
    expect([...g.keys()].sort()).toEqual([
      "appfeed",
      "behavior",
      "config",
      "esh",
      "hmpa",
      "install",
      "ips",
      "query",
      "repair",
      "scanner",
      "software",
      "telemetry",
    ]);
    // install (CRT): the only group with write access to the whole system, and no network (issue 20).
    expect(g.get("install")).toMatchObject({
      runAs: "root",
      fs: { write: ["/**"] },
      net: "none",
      exec: true,
    });
    // appfeed (issue 17): unprivileged, read-only package databases and application paths, no
    // network; exec only for the read-only query tools its Lua API allows.
    expect(g.get("appfeed")).toMatchObject({
      runAs: "agent",
      fs: { write: [] },
      net: "none",
      exec: true,
      agent: false,
      capabilities: [],
    });
    // Checked path by path: Bun's toMatchObject with an asymmetric matcher nested in it wrote the matcher
    // into the group itself, and later tests in the same process saw a broken policy.
    for (const path of ["/var/lib/dpkg/**", "/var/lib/rpm/**", "/etc/**", "/opt/**"])
      expect(g.get("appfeed")?.fs.read).toContain(path);
    // TELEMSUP checks a document; ESH gets log lines over IPC; AgentSoftware is proven from its bytes:
    // none may touch files or the network (the A/B switch is the supervisor's).
    for (const name of ["telemetry", "esh", "software"]) {
      expect(g.get(name)).toMatchObject({
        runAs: "agent",
        fs: { read: [], write: [] },
        net: "none",
        exec: false,
        agent: false,
      });
    }
    // wave3.md: policy remapping and flags are pure functions of their input: no fs, no net, no exec.
    expect(g.get("config")).toMatchObject({
      runAs: "agent",
      fs: { read: [], write: [] },
      net: "none",
      exec: false,
      agent: false,
    });
    expect(g.get("scanner")).toMatchObject({
      runAs: "agent",
      fs: { read: [], write: [] },
      net: "none",
      exec: false,
    });
    expect(g.get("hmpa")).toMatchObject({
      runAs: "agent",
      fs: { read: [], write: [] },
      net: "none",
      exec: false,
    });
    // ips: like the scanner — packets arrive over IPC, nothing else is reachable.
    expect(g.get("ips")).toMatchObject({
      runAs: "agent",
      fs: { read: [], write: [] },
      net: "none",
      exec: false,
    });
    expect(g.get("behavior")).toMatchObject({ runAs: "agent", net: "none", exec: false, agent: false });
    expect(g.get("behavior")?.fs.write).toEqual([]);
    expect(g.get("query")).toMatchObject({ runAs: "root", net: "none", fs: { read: ["/**"], write: [] } });
    expect(g.get("repair")).toMatchObject({ runAs: "root", exec: true, agent: true });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a path placeholder
    expect(g.get("repair")?.fs.write).toContain("${stateDir}/**");
    // Only root groups keep capabilities, and only named ones.
    for (const group of builtinGroups) if (group.runAs === "agent") expect(group.capabilities).toEqual([]);
  });

  test("the shared process runs the groups with nothing but IPC input, never the scanner or the IPS (G3)", async () => {
    const { processOf, refused } = processesOf(builtinGroups);
    expect(refused).toEqual([]);
    const shared = builtinGroups.filter((g) => processOf.get(g.name) === "shared").map((g) => g.name);
    expect(shared.sort()).toEqual(["config", "esh", "hmpa", "software", "telemetry"]);
    expect(groupsOfProcess("shared").sort()).toEqual(shared);
    // Same allowance, but parsers of hostile bytes at volume: their own processes.
    expect(processOf.get("scanner")).toBe("scanner");
    expect(processOf.get("ips")).toBe("ips");
    for (const g of builtinGroups)
      if (processOf.get(g.name) === g.name) expect(groupsOfProcess(g.name)).toEqual([g.name]);
    // The shared host imports exactly the handlers of its groups.
    const expected = builtinHandlers()
      .filter((h) => shared.includes(h.manifest.group))
      .map((h) => h.manifest.name)
      .sort();
    expect((await registryForGroup("shared")).types()).toEqual(expected);
  });

  test("every built-in handler names a registered group", () => {
    const names = new Set(builtinGroups.map((g) => g.name));
    for (const h of builtinHandlers()) expect(names.has(h.manifest.group)).toBe(true);
  });

  test("a host imports only its group's modules, and together they are exactly the built-in handlers", async () => {
    const byGroup = new Map<string, string[]>();
    for (const h of builtinHandlers()) {
      byGroup.set(h.manifest.group, [...(byGroup.get(h.manifest.group) ?? []), h.manifest.name].sort());
    }
    for (const group of Object.keys(GROUP_MODULES)) {
      expect([group, (await registryForGroup(group)).types()]).toEqual([group, byGroup.get(group) ?? []]);
    }
    expect([...byGroup.keys()].filter((g) => !(g in GROUP_MODULES))).toEqual([]);
  });
});
