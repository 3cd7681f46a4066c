import { describe, expect, test } from "bun:test";
import { type HandlerManifestInput, HandlerManifestSchema } from "../handler/contract.ts";
import { HandlerRegistry } from "../handler/registry.ts";
import {
  defineGroup,
  expandManifest,
  globCovers,
  landlockBase,
  portOf,
  privilegeViolation,
  processesOf,
  registryViolations,
  sandboxFor,
} from "./policy.ts";

const manifest = (privileges: Partial<HandlerManifestInput["privileges"]>, group = "g") =>
  HandlerManifestSchema.parse({
    name: "H",
    description: "t",
    group,
    privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false, ...privileges },
  });

const nothing = defineGroup({ name: "g", description: "nothing", runAs: "agent", net: "none", exec: false });
const behavior = defineGroup({
  name: "g",
  description: "reads /proc",
  runAs: "agent",
  fs: { read: ["/proc/**", "/etc/passwd"] },
  net: "none",
  exec: false,
});
const repair = defineGroup({
  name: "g",
  description: "root",
  runAs: "root",
  fs: { read: ["/etc/**"], write: [`\${stateDir}/**`] },
  net: ["https:updates.example.com", "http:*"],
  exec: true,
  agent: true,
  capabilities: ["chown"],
});

describe("G1: declared privileges within the group's allowance", () => {
  test("glob coverage is conservative", () => {
    expect(globCovers("/proc/**", "/proc/*/status")).toBe(true);
    expect(globCovers("/proc/**", "/proc")).toBe(true);
    expect(globCovers("/proc/**", "/procfs/x")).toBe(false);
    expect(globCovers("/**", "/anything/at/all")).toBe(true);
    expect(globCovers("/etc/*.conf", "/etc/a.conf")).toBe(true);
    expect(globCovers("/etc/*.conf", "/etc/*/x.conf")).toBe(false);
    expect(globCovers(`\${stateDir}/**`, `\${stateDir}/content/**`)).toBe(true);
    expect(globCovers(`\${stateDir}/**`, "/var/lib/outpost/**")).toBe(false);
  });

  test("a fitting declaration passes, and less than the group is fine", () => {
    expect(privilegeViolation(manifest({}), nothing)).toBeNull();
    expect(
      privilegeViolation(manifest({ fs: { mode: "read-only", paths: ["/proc/*/stat"] } }), behavior),
    ).toBeNull();
    expect(
      privilegeViolation(
        manifest({
          runAs: "root",
          fs: { mode: "read-write", paths: [`\${stateDir}/content/**`] },
          net: ["https:updates.example.com", "http:mirror.local"],
          exec: true,
          agent: true,
        }),
        repair,
      ),
    ).toBeNull();
  });

  test.each([
    [{ runAs: "root" as const }, nothing, "privileges.runAs root"],
    [
      { fs: { mode: "read-only" as const, paths: ["/etc/shadow"] } },
      behavior,
      "privileges.fs read-only /etc/shadow",
    ],
    [
      { fs: { mode: "read-write" as const, paths: ["/proc/**"] } },
      behavior,
      "privileges.fs read-write /proc/**",
    ],
    [{ fs: { mode: "read-write" as const, paths: ["/etc/**"] } }, repair, "privileges.fs read-write /etc/**"],
    [{ net: ["dns"] }, nothing, "privileges.net dns"],
    [{ net: ["https:evil.example"] }, repair, "privileges.net https:evil.example"],
    [{ exec: true }, behavior, "privileges.exec"],
    [{ agent: true }, nothing, "privileges.agent"],
    [{ hostView: true }, repair, "privileges.hostView"],
  ])("%o in its group → HND_PRIVILEGES_EXCEED_GROUP naming the privilege", (p, group, named) => {
    const e = privilegeViolation(manifest(p), group);
    expect(e?.code).toBe("HND_PRIVILEGES_EXCEED_GROUP");
    expect(e?.message).toContain(named);
    expect(e?.message).toContain("H (group g)");
  });

  test("a handler in a group nobody registered is refused", () => {
    expect(privilegeViolation(manifest({}, "nowhere"), undefined)?.code).toBe("HND_UNKNOWN_GROUP");
  });

  test("registryViolations lists every misfit of a registry", () => {
    const mk = (name: string, group: string, exec: boolean) => ({
      manifest: HandlerManifestSchema.parse({
        name,
        description: "t",
        group,
        privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec },
      }),
      validate() {},
      load: () => ({}),
    });
    const r = new HandlerRegistry()
      .registerGroup(nothing)
      .register(mk("Ok", "g", false))
      .register(mk("Exec", "g", true))
      .register(mk("Lost", "h", false));
    expect(registryViolations(r).map((e) => [e.code, e.message.split(":")[0]])).toEqual([
      ["HND_PRIVILEGES_EXCEED_GROUP", "Exec (group g)"],
      ["HND_UNKNOWN_GROUP", "Lost (group h)"],
    ]);
  });
});

describe("G2: a host gets the union of its handlers' declarations", () => {
  const vars = { stateDir: "/var/lib/outpost", installDir: "/opt/outpost" };

  test("paths, ports, exec and identity come from what was declared, not from the group", () => {
    const spec = sandboxFor(
      repair,
      [
        manifest(
          { fs: { mode: "read-only", paths: ["/etc/os-release"] }, net: ["https:updates.example.com"] },
          "g",
        ),
        manifest({ fs: { mode: "read-write", paths: [`\${stateDir}/**`] }, exec: true, runAs: "root" }, "g"),
      ],
      vars,
    );
    expect(spec).toEqual({
      group: "g",
      runAs: "root",
      fsRead: ["/etc/os-release"],
      fsWrite: ["/var/lib/outpost/**"],
      exec: true,
      net: { connectPorts: [443], endpoints: ["https:updates.example.com"] },
      agent: false,
      capabilities: ["chown"],
    });
  });

  test("a root group whose handlers all run as agent drops to the agent user", () => {
    const spec = sandboxFor(repair, [manifest({}, "g")], vars);
    expect([spec.runAs, spec.capabilities, spec.net]).toEqual(["agent", [], "none"]);
  });

  test("ports, Landlock bases and placeholders", () => {
    expect([portOf("dns"), portOf("https:a.b"), portOf("http:a.b"), portOf("http:127.0.0.1:8080")]).toEqual([
      53, 443, 80, 8080,
    ]);
    expect(landlockBase("/proc/**")).toBe("/proc");
    expect(landlockBase("/etc/*.conf")).toBe("/etc");
    expect(landlockBase("/**")).toBe("/");
    expect(landlockBase("/etc/passwd")).toBe("/etc/passwd");
    const m = expandManifest(
      manifest({ fs: { mode: "read-write", paths: [`\${stateDir}/x`, `\${installDir}/**`] } }),
      vars,
    );
    expect(m.privileges.fs).toEqual({ mode: "read-write", paths: ["/var/lib/outpost/x", "/opt/outpost/**"] });
  });
});

describe("G3: groups sharing a process", () => {
  const pure = (name: string, extra: Record<string, unknown> = {}) =>
    defineGroup({ name, description: "t", runAs: "agent", net: "none", exec: false, process: "p", ...extra });

  test("identical allowances share the named process; groups without `process` keep their own", () => {
    const own = defineGroup({ name: "own", description: "t", runAs: "agent", net: "none", exec: false });
    const { processOf, refused } = processesOf([pure("a"), pure("b", { description: "other words" }), own]);
    expect(refused).toEqual([]);
    expect(Object.fromEntries(processOf)).toEqual({ a: "p", b: "p", own: "own" });
  });

  test("a group whose allowance differs in anything is refused the shared process and runs alone", () => {
    for (const diff of [
      { exec: true },
      { net: ["https:x.example"] },
      { fs: { read: ["/etc/**"] } },
      { runAs: "root" },
      { agent: true },
      { hostView: true },
    ]) {
      const { processOf, refused } = processesOf([pure("a"), pure("b", diff)]);
      expect(processOf.get("a")).toBe("p");
      expect(processOf.get("b")).toBe("b");
      expect(refused.map((e) => e.code)).toEqual(["HND_GROUP_PROCESS_CONFLICT"]);
      expect(refused[0]!.message).toContain("group b");
    }
  });

  test("capabilities and paths compare as sets, not as lists", () => {
    const x = pure("a", { runAs: "root", capabilities: ["chown", "kill"], fs: { read: ["/a/**", "/b/**"] } });
    const y = pure("b", { runAs: "root", capabilities: ["kill", "chown"], fs: { read: ["/b/**", "/a/**"] } });
    expect(processesOf([x, y]).refused).toEqual([]);
  });

  test("a process may not take the name of a group that runs elsewhere", () => {
    const q = pure("q", { process: "other" });
    const { processOf, refused } = processesOf([q, pure("z", { process: "q" })]);
    expect(processOf.get("z")).toBe("z");
    expect(refused.map((e) => e.code)).toEqual(["HND_GROUP_PROCESS_CONFLICT"]);
  });
});
