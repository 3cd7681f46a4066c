/** Detection and planning over a fake system: what is found, what is refused at run time, what runs. */
import { describe, expect, test } from "bun:test";
import type { ExecCapability } from "../../core/handler/contract.ts";
import { act, detect, simulatedRemovals } from "./engine.ts";
import { parseRulesText } from "./format.ts";
import type { PackageFacts } from "./guard.ts";
import type { Probe } from "./probe.ts";

const rules = parseRulesText(
  JSON.stringify({
    rules: [
      {
        id: "PKG",
        title: "a competitor package",
        reason: "r",
        detect: { packages: ["comp"] },
        actions: [{ kind: "apt-remove", package: "comp" }],
      },
      {
        id: "REQ",
        title: "a package this host's dpkg marks required",
        reason: "r",
        detect: { packages: ["mostly-harmless"] },
        actions: [{ kind: "apt-remove", package: "mostly-harmless" }],
      },
      {
        id: "PROC",
        title: "a process",
        reason: "r",
        detect: { processes: ["rivald"] },
        actions: [{ kind: "systemctl-disable", unit: "rival.service" }],
      },
      {
        id: "ABSENT",
        title: "t",
        reason: "r",
        detect: { paths: ["/opt/none"] },
        actions: [{ kind: "apt-remove", package: "none" }],
      },
    ],
  }),
);

function fakeProbe(): Probe {
  const facts = new Map<string, PackageFacts>([
    ["comp", { installed: true, priority: "optional", essential: false }],
    ["mostly-harmless", { installed: true, priority: "required", essential: false }],
  ]);
  return {
    packages: async (names) =>
      new Map(names.flatMap((n) => (facts.has(n) ? [[n, facts.get(n) as PackageFacts]] : []))),
    unitExists: async (u) => u === "rival.service",
    pathExists: () => false,
    runningProcesses: () => new Set(["init", "rivald"]),
  };
}

function fakeExec(sim: Record<string, string>): ExecCapability & { ran: string[][] } {
  const ran: string[][] = [];
  return {
    ran,
    async run(cmd) {
      ran.push(cmd);
      if (cmd[1] === "-s") return { code: 0, stdout: sim[cmd[3] as string] ?? "", stderr: "" };
      return { code: 0, stdout: "", stderr: "" };
    },
  };
}

describe("CRT engine", () => {
  test("detects by package and process; skips rules that match nothing; refuses CRT-G3 at run time", async () => {
    const findings = await detect(rules, fakeProbe());
    expect(findings.map((f) => f.rule)).toEqual(["PKG", "REQ", "PROC"]);
    expect(findings[0]?.actions[0]?.state).toBe("planned");
    expect(findings[1]?.actions[0]).toMatchObject({ state: "refused", refusal: { rule: "CRT-G3" } });
    expect(findings[2]?.matched.processes).toEqual(["rivald"]);
  });

  test("acts on planned actions only, simulating each removal first", async () => {
    const exec = fakeExec({ comp: "Remv comp [1.0]\n" });
    const done = await act(await detect(rules, fakeProbe()), exec);
    expect(done.map((f) => f.actions[0]?.state)).toEqual(["done", "refused", "done"]);
    expect(exec.ran).toEqual([
      ["apt-get", "-s", "remove", "comp"],
      [
        "apt-get",
        "remove",
        "-y",
        "-o",
        "DPkg::Lock::Timeout=120",
        "-o",
        "Dpkg::Options::=--force-confold",
        "comp",
      ],
      ["systemctl", "disable", "--now", "rival.service"],
    ]);
  });

  test("a removal that would cascade into other packages is not run", async () => {
    const exec = fakeExec({ comp: "Remv comp [1.0]\nRemv comp-plugins:amd64 [1.0]\nRemv desktop [2]\n" });
    const [f] = await act(await detect(rules.slice(0, 1), fakeProbe()), exec);
    expect(f?.actions[0]).toMatchObject({
      state: "failed",
      error: "removing comp would also remove comp-plugins, desktop; not removed",
    });
    expect(exec.ran.some((c) => c[1] === "remove")).toBe(false);
  });

  test("simulatedRemovals reads apt's Remv lines", () => {
    expect(simulatedRemovals("NOTE: x\nRemv sl [5.02-1+b1]\nRemv a:amd64 [1]\n")).toEqual(["sl", "a"]);
  });
});
