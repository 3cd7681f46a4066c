/** CRT safety rules, one test per attack: each must be refused and cite its rule id. */
import { describe, expect, test } from "bun:test";
import { parseRulesText } from "./format.ts";
import { assertSafe, dpkgRefusal, staticRefusals } from "./guard.ts";

const rule = (over: Record<string, unknown>) =>
  parseRulesText(
    JSON.stringify({
      rules: [
        {
          id: "R1",
          title: "t",
          reason: "r",
          detect: { packages: ["competitor"] },
          actions: [{ kind: "apt-remove", package: "competitor" }],
          ...over,
        },
      ],
    }),
  );

const refusalRules = (over: Record<string, unknown>) =>
  rule(over)
    .flatMap(staticRefusals)
    .map((r) => r.rule);

describe("CRT guard", () => {
  test("a plain competitor rule passes", () => {
    expect(refusalRules({})).toEqual([]);
    expect(() => assertSafe(rule({}))).not.toThrow();
  });

  test("CRT-G1: removing or disabling the agent itself", () => {
    expect(refusalRules({ actions: [{ kind: "apt-remove", package: "outpost" }] })).toEqual(["CRT-G1"]);
    expect(refusalRules({ actions: [{ kind: "apt-remove", package: "outpost-agent" }] })).toEqual(["CRT-G1"]);
    expect(refusalRules({ actions: [{ kind: "systemctl-disable", unit: "outpost.service" }] })).toEqual([
      "CRT-G1",
    ]);
    expect(() =>
      assertSafe(rule({ actions: [{ kind: "systemctl-disable", unit: "outpost.service" }] })),
    ).toThrow(expect.objectContaining({ code: "CRT_TARGETS_AGENT", file: "rules.json" }));
  });

  test("CRT-G1: detecting the agent (its paths, unit, process) so that a rule would fire on every host", () => {
    expect(refusalRules({ detect: { paths: ["/opt/outpost/current/agent"] } })).toEqual(["CRT-G1"]);
    expect(refusalRules({ detect: { paths: ["/opt"] } })).toEqual(["CRT-G1"]);
    expect(refusalRules({ detect: { paths: ["/"] } })).toEqual(["CRT-G1"]);
    expect(refusalRules({ detect: { units: ["outpost.service"] } })).toEqual(["CRT-G1"]);
    expect(refusalRules({ detect: { processes: ["agent"] } })).toEqual(["CRT-G1"]);
    expect(refusalRules({ detect: { paths: ["/opt/outpostish"] } })).toEqual([]);
  });

  test("CRT-G2: essential packages (libc6, systemd, openssh-server) are never removed", () => {
    for (const p of ["libc6", "systemd", "openssh-server", "dpkg", "apt"]) {
      expect(refusalRules({ actions: [{ kind: "apt-remove", package: p }] })).toEqual(["CRT-G2"]);
    }
    expect(() => assertSafe(rule({ actions: [{ kind: "apt-remove", package: "libc6" }] }))).toThrow(
      expect.objectContaining({ code: "CRT_TARGETS_ESSENTIAL" }),
    );
  });

  test("CRT-G3: the host's dpkg says Essential: yes or Priority: required", () => {
    expect(dpkgRefusal("R1", "x", { installed: true, priority: "required", essential: false })?.rule).toBe(
      "CRT-G3",
    );
    expect(dpkgRefusal("R1", "x", { installed: true, priority: "optional", essential: true })?.rule).toBe(
      "CRT-G3",
    );
    expect(dpkgRefusal("R1", "x", { installed: true, priority: "optional", essential: false })).toBeNull();
  });

  test("CRT-G4: units the system needs (ssh, dbus, systemd-*) are never disabled", () => {
    for (const u of ["ssh.service", "dbus.service", "systemd-journald.service", "sshd.socket"]) {
      expect(refusalRules({ actions: [{ kind: "systemctl-disable", unit: u }] })).toEqual(["CRT-G4"]);
    }
  });

  test("schema: no shell in names, no relative or '..' paths, no empty detectors, unique ids", () => {
    const bad = [
      { actions: [{ kind: "apt-remove", package: "x; rm -rf /" }] },
      { actions: [{ kind: "systemctl-disable", unit: "x" }] },
      { detect: { paths: ["usr/bin/x"] } },
      { detect: { paths: ["/usr/../etc/shadow"] } },
      { detect: {} },
      { actions: [] },
      { actions: [{ kind: "rm-rf", path: "/" }] },
    ];
    for (const over of bad)
      expect(() => rule(over)).toThrow(expect.objectContaining({ code: "CRT_INVALID" }));
    const dup = {
      id: "A",
      title: "t",
      reason: "r",
      detect: { packages: ["ab"] },
      actions: [{ kind: "apt-remove", package: "ab" }],
    };
    expect(() => parseRulesText(JSON.stringify({ rules: [dup, dup] }))).toThrow(
      expect.objectContaining({ code: "CRT_INVALID" }),
    );
  });
});
