/**
 * Failures to save state are reported, not lost (core/write-errors.ts,
 * core/agent/disk-health.ts). The state dir lives on a small tmpfs this test
 * mounts (as root); before each update cycle the tmpfs is filled so that it
 * has N pages left, for N = 0, 1, 2, … until the cycle fits. Every cycle
 * that runs out of space still ends in a report — exit 3, STORE_NO_SPACE,
 * the file and the step — with health AMBER, the error in status even
 * though it could not be written, and a whole version live. Once space is
 * back the next cycle converges and health clears.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exitCodeForReport } from "../../core/cli/agent/session.ts";
import { liveText, makeVendor, startAgent, type Vendor } from "../fixtures/vendor.ts";

const isRoot = process.getuid?.() === 0;
let base: string;
let mnt: string;
let mounted = false;
let vendor: Vendor;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "outpost-nospace-"));
  mnt = join(base, "mnt");
  mkdirSync(mnt);
  if (!isRoot) return;
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "outpost-test", mnt]);
  if (r.exitCode !== 0) throw new Error(`mount tmpfs failed: ${r.stderr.toString()}`);
  mounted = true;
});

afterAll(() => {
  if (mounted) Bun.spawnSync(["umount", "-l", mnt]);
  vendor?.cleanup();
  rmSync(base, { recursive: true, force: true });
});

/** Fills the tmpfs so that exactly `pages` pages stay free. */
function leaveFree(pages: number): void {
  rmSync(join(mnt, "filler"), { force: true });
  const st = statfsSync(mnt);
  const fill = Math.max(0, Number(st.bavail) - pages) * Number(st.bsize);
  writeFileSync(join(mnt, "filler"), Buffer.alloc(fill, 1));
  expect(Number(statfsSync(mnt).bavail)).toBeLessThanOrEqual(pages);
}

test.skipIf(!isRoot)(
  "out of space at any step of an install: a report (exit 3, STORE_NO_SPACE, file, step), AMBER, whole content",
  async () => {
    vendor = await makeVendor();
    await vendor.release("TestText", 1, { "data.txt": "v1" });
    // A pristine state dir with v1 installed, copied onto the tmpfs before each attempt.
    const pristine = join(base, "pristine");
    const config = { hosts: { isolation: "in-process" as const } };
    const first = await startAgent(vendor, { stateDir: pristine, config });
    expect((await first.agent.update()).installed.length).toBe(1);
    await first.stop();
    await vendor.release("TestText", 2, { "data.txt": `v2 ${"x".repeat(6000)}` });

    const stateDir = join(mnt, "state");
    const steps = new Set<string>();
    let fitted = -1;
    for (let pages = 0; pages < 64 && fitted < 0; pages++) {
      rmSync(join(mnt, "filler"), { force: true });
      rmSync(stateDir, { recursive: true, force: true });
      cpSync(pristine, stateDir, { recursive: true });
      const t = await startAgent(vendor, { stateDir, config });
      try {
        leaveFree(pages);
        const report = await t.agent.update();
        if (report.ok) {
          fitted = pages;
          break;
        }
        expect(exitCodeForReport(report)).toBe(3);
        expect(report.rejected.length).toBeGreaterThan(0);
        for (const r of report.rejected) {
          expect(r.code).toBe("STORE_NO_SPACE");
          expect(r.file.length).toBeGreaterThan(0);
          expect(r.reason).toMatch(/no space left on the state disk while /);
          steps.add(
            `${r.file.replace(stateDir, "STATE").replace(/\/(\d+-[0-9a-f]{16}|stage-[^/]+)/g, "/…")} ${r.reason.split(" while ")[1]}`,
          );
        }
        const status = t.agent.status();
        expect(status.health).toBe("amber");
        expect(status.healthDetails?.some((h) => h.source === "store" && h.code === "STORE_NO_SPACE")).toBe(
          true,
        );
        // Kept in memory for status even when update-state.json could not take it.
        expect(status.lastErrors[0]?.code).toBe("STORE_NO_SPACE");
        // Whatever step failed, a whole version is live: v1, or v2 when only the last save failed.
        expect(["v1", `v2 ${"x".repeat(6000)}`]).toContain((await liveText(t.agent)) ?? "none");

        // Space back: the next cycle converges on v2 and health clears.
        rmSync(join(mnt, "filler"), { force: true });
        const again = await t.agent.update();
        expect(again.ok).toBe(true);
        expect(await liveText(t.agent)).toBe(`v2 ${"x".repeat(6000)}`);
        expect(t.agent.status().health).toBe("green");
      } finally {
        await t.stop();
      }
    }
    expect(fitted).toBeGreaterThan(2);
    // Several distinct files and steps ran out of space along the way.
    expect(steps.size).toBeGreaterThanOrEqual(3);
  },
  180_000,
);
