/**
 * The OpenAPI document of the agent as shipped — core routes plus every
 * route extension bin/agent.ts wires in (scanning, queries, …) — generated
 * by `agent openapi` without a running agent, must stay structurally valid:
 * an extension that declares a broken schema or an undeclared path
 * parameter fails here, not in a customer's code generator.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { structuralProblems } from "./fixtures/openapi.ts";

test("agent openapi (all wired extensions) is a structurally valid OpenAPI 3.1 document", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-openapi-"));
  try {
    const proc = Bun.spawn(
      [process.execPath, join(import.meta.dir, "../bin/agent.ts"), "openapi", "--state", stateDir],
      {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
      },
    );
    const [out, err, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const doc = JSON.parse(out) as { paths: Record<string, unknown> };
    expect(structuralProblems(doc)).toEqual([]);
    for (const path of ["/v1/health", "/v1/status", "/v1/events", "/metrics", "/v1/openapi.json"])
      expect(Object.keys(doc.paths)).toContain(path);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});
