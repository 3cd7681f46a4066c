import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RepairEnv } from "./env.ts";
import { salvageSerials } from "./env-state.ts";
import type { RepairFacts } from "./facts.ts";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function env(): RepairEnv {
  dir = mkdtempSync(join(tmpdir(), "outpost-repairenv-"));
  const stateDir = join(dir, "state");
  mkdirSync(stateDir);
  const facts: RepairFacts = {
    schema: 1,
    stateDir,
    trustPath: join(dir, "root.pem"),
    configFile: null,
    update: { enabled: true, intervalSeconds: 3600, maxBackoffSeconds: 21600, group: "g", repo: "r" },
    agentUid: 0,
    agentGid: 0,
    writtenAt: new Date().toISOString(),
  };
  return new RepairEnv(facts, "offline");
}

describe("RepairKit's view of the installation", () => {
  test("paths stay inside the state directory: no absolute paths, no .., no symlinked directories", () => {
    const e = env();
    const outside = join(dir!, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "secret"), "x");
    symlinkSync(outside, join(e.facts.stateDir, "link"));
    expect(() => e.stat("/etc/passwd")).toThrow(/relative to the state directory/);
    expect(() => e.stat("../outside/secret")).toThrow(/leaves the state directory/);
    expect(() => e.stat("a/../../outside")).toThrow(/leaves the state directory/);
    expect(() => e.read("link/secret")).toThrow(/symlink/);
    expect(() => e.chmod("link", 0o777)).toThrow(/symlink/);
    expect(e.stat("link")).toMatchObject({ type: "link" });
    expect(() => e.remove(".")).toThrow(/cannot remove the state directory/);
  });

  test("serials survive in the text of a damaged update state", () => {
    const text =
      '{"schema":1,"groups":{"public-1":{"lastSerial":41,"lastIndexSha384":"ab"},"beta":{"lastSeri';
    expect(salvageSerials(text)).toEqual({ "public-1": 41 });
    expect(salvageSerials("\u0000\u0001 garbage")).toEqual({});
  });

  test("a reset keeps the floor it can prove and quarantines the broken file", async () => {
    const e = env();
    writeFileSync(
      join(e.facts.stateDir, "update-state.json"),
      '{"schema":1,"groups":{"g":{"lastSerial":9,"lastInd',
    );
    await e.prepare(undefined);
    const r = e.resetUpdateState();
    expect(r.preserved).toEqual({ g: 8 });
    expect(String(r.quarantined)).toMatch(/^quarantine\/.*update-state\.json$/);
    expect(e.updateState()).toMatchObject({ present: true, ok: true, consecutiveFailures: 0 });
  });
});
