import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PROC_VIEW_MAX_BYTES, ProcViewRequestSchema, takeProcView } from "./proc-view.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-procview-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function fakeProcess(pid: number, o: { cwd: string; fds: Record<string, string>; environ?: string }) {
  const base = join(root, "proc", String(pid));
  mkdirSync(join(base, "fd"), { recursive: true });
  mkdirSync(join(base, "ns"), { recursive: true });
  symlinkSync("/usr/bin/sleep", join(base, "exe"));
  symlinkSync(o.cwd, join(base, "cwd"));
  symlinkSync("/", join(base, "root"));
  symlinkSync("net:[4026531840]", join(base, "ns", "net"));
  for (const [fd, t] of Object.entries(o.fds)) symlinkSync(t, join(base, "fd", fd));
  writeFileSync(join(base, "environ"), o.environ ?? "");
  writeFileSync(join(base, "maps"), "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/sleep\n");
}

fakeProcess(10, { cwd: "/srv/app", fds: { "0": "/dev/null", "3": "socket:[777]" }, environ: "A=1\0B=2\0" });
fakeProcess(11, { cwd: "/tmp", fds: {} });
mkdirSync(join(root, "proc", "self"), { recursive: true });

describe("the supervisor's process view", () => {
  test("reads the links of every process, and only the parts asked for", () => {
    const v = takeProcView({ parts: ["links"] }, root, () => 42);
    expect(v.takenAt).toBe(42);
    expect(Object.keys(v.procs).sort()).toEqual(["10", "11"]);
    expect(v.procs["10"]).toEqual({
      exe: "/usr/bin/sleep",
      cwd: "/srv/app",
      root: "/",
      netns: "net:[4026531840]",
    });
    expect(v.procs["10"]?.fds).toBeUndefined();
    expect(v.procs["10"]?.environ).toBeUndefined();
  });

  test("descriptors, environment and memory map on request", () => {
    const v = takeProcView({ parts: ["fds", "environ", "maps"] }, root);
    expect(v.procs["10"]?.fds?.sort()).toEqual([
      [0, "/dev/null"],
      [3, "socket:[777]"],
    ]);
    expect(v.procs["10"]?.environ).toBe("A=1\0B=2\0");
    expect(v.procs["11"]?.maps).toContain("/usr/bin/sleep");
    expect(v.procs["10"]?.cwd).toBeUndefined();
  });

  test("the request is validated at the edge: unknown parts and extra keys are refused", () => {
    expect(ProcViewRequestSchema.safeParse({ parts: ["links"] }).success).toBe(true);
    expect(ProcViewRequestSchema.safeParse({ parts: ["mem"] }).success).toBe(false);
    expect(ProcViewRequestSchema.safeParse({ parts: [] }).success).toBe(false);
    expect(ProcViewRequestSchema.safeParse({ parts: ["links"], path: "/etc/shadow" }).success).toBe(false);
  });

  test("the answer is bounded (the rest falls back to direct reads)", () => {
    expect(PROC_VIEW_MAX_BYTES).toBeLessThan(64 * 1024 * 1024);
    const live = takeProcView({ parts: ["links"] });
    expect(live.truncated).toBe(false);
    expect(live.procs[String(process.pid)]?.cwd).toBe(process.cwd());
  });
});
