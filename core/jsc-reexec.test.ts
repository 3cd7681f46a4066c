/**
 * `agent run`'s decision to re-execute itself with the hosts' JavaScriptCore options, and the
 * re-executed image removing them from what its children inherit (jsc-reexec.ts). The exec
 * itself needs a compiled executable: test/host/supervisor-jsc.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { AGENT_RUNTIME_ENV } from "./jsc-options.ts";
import { JSC_REEXEC_MARK, reexecDecision } from "./jsc-reexec.ts";

describe("reexecDecision", () => {
  test("a compiled supervisor re-executes with every option and the mark, keeping its environment", () => {
    const d = reexecDecision(
      { PATH: "/usr/bin", NOTIFY_SOCKET: "/run/systemd/notify", UNSET: undefined },
      true,
    );
    expect(d.action).toBe("exec");
    if (d.action !== "exec") return;
    expect(d.env).toEqual({
      PATH: "/usr/bin",
      NOTIFY_SOCKET: "/run/systemd/notify",
      ...AGENT_RUNTIME_ENV,
      [JSC_REEXEC_MARK]: "1",
    });
  });

  test("run from source: the runtime is whatever bun is, so nothing happens", () => {
    expect(reexecDecision({ PATH: "/usr/bin" }, false)).toMatchObject({ action: "none" });
  });

  test("an operator's own BUN_JSC_* variable keeps every option theirs", () => {
    const d = reexecDecision({ BUN_JSC_useJIT: "0" }, true);
    expect(d).toEqual({
      action: "none",
      reason: "BUN_JSC_useJIT is set: the operator's JavaScriptCore options are kept",
    });
  });

  test("so does an operator's own MIMALLOC_* variable (the allocator's options are in the set too)", () => {
    expect(Object.keys(AGENT_RUNTIME_ENV)).toContain("MIMALLOC_SCAVENGER");
    expect(reexecDecision({ MIMALLOC_PURGE_DELAY: "100" }, true)).toEqual({
      action: "none",
      reason: "MIMALLOC_PURGE_DELAY is set: the operator's allocator options are kept",
    });
  });

  test("the re-executed image strips the mark and the options instead of looping", () => {
    const env = { ...AGENT_RUNTIME_ENV, [JSC_REEXEC_MARK]: "1" };
    for (const compiled of [true, false]) {
      const d = reexecDecision(env, compiled);
      expect(d.action).toBe("strip");
      if (d.action === "strip") expect(d.keys.sort()).toEqual(Object.keys(env).sort());
    }
  });
});

test("a re-executed supervisor probes a new agent build without its own options", () => {
  // A new build whose runtime dropped an option refuses to start with it; this one refuses any.
  const root = mkdtempSync(join(tmpdir(), "outpost-jsc-reexec-"));
  try {
    const bin = join(root, "opt/outpost/current/agent");
    mkdirSync(dirname(bin), { recursive: true });
    writeFileSync(
      bin,
      '#!/bin/sh\nif env | grep -q "^BUN_JSC_\\|^OUTPOST_JSC_REEXEC="; then echo "invalid JSC environment variable" >&2; exit 1; fi\necho \'{"name":"outpost-agent"}\'\n',
    );
    chmodSync(bin, 0o755);
    const script = [
      `const { reexecWithJscOptions } = await import(${JSON.stringify(join(import.meta.dir, "jsc-reexec.ts"))});`,
      `const { versionProbe } = await import(${JSON.stringify(join(import.meta.dir, "install/slots.ts"))});`,
      "const failed = reexecWithJscOptions(false);",
      `await versionProbe(${JSON.stringify(root)})(new AbortController().signal);`,
      "const left = Object.keys(process.env).filter((k) => k.startsWith('BUN_JSC_') || k.startsWith('OUTPOST_JSC'));",
      "console.log(JSON.stringify({ failed: failed ?? null, left, kept: process.env.KEPT }));",
    ].join("\n");
    const r = Bun.spawnSync([process.execPath, "-e", script], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        ...AGENT_RUNTIME_ENV,
        [JSC_REEXEC_MARK]: "1",
        KEPT: "yes",
      },
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toEqual({ failed: null, left: [], kept: "yes" });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a failed execve names the errno and leaves the process running as it was", () => {
  const script = [
    `const { reexecWithJscOptions } = await import(${JSON.stringify(join(import.meta.dir, "jsc-reexec.ts"))});`,
    'const failed = reexecWithJscOptions(true, "/nonexistent/outpost-agent");',
    "console.log(JSON.stringify({ failed, jsc: Object.keys(process.env).filter((k) => k.startsWith('BUN_JSC_')) }));",
  ].join("\n");
  const r = Bun.spawnSync([process.execPath, "-e", script], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  expect(r.exitCode).toBe(0);
  expect(JSON.parse(r.stdout.toString())).toEqual({
    failed:
      "execve of /nonexistent/outpost-agent failed (errno 2); running without the JavaScriptCore options (core/jsc-options.ts)",
    jsc: [],
  });
});
