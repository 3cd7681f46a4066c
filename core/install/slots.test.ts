/**
 * A/B switch: a healthy build is kept; a build that does not start, crashes,
 * or never answers is rolled back within the deadline and marked bad; an
 * interrupted switch (SIGKILL at any moment) always leaves `current` naming
 * a complete slot, and `--recover` restores the old one after the deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LAYOUT } from "./layout.ts";
import {
  currentSlot,
  readRecord,
  recover,
  softwareRecordPath,
  switchSoftware,
  versionProbe,
} from "./slots.ts";

const T = 60_000;
const enc = (s: string) => new TextEncoder().encode(s);
const GOOD_A = enc(`#!/bin/sh\necho '{"name":"outpost-agent","version":"1"}'\n`);
const GOOD_B = enc(`#!/bin/sh\necho '{"name":"outpost-agent","version":"2"}'\n`);
const EXITS = enc("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n");
const CRASHES = enc("#!/bin/sh\nkill -SEGV $$\n");
const HANGS = enc("#!/bin/sh\nexec sleep 600\n");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "outpost-slots-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A root with slot-a holding GOOD_A behind `current` (what agent install leaves). */
function freshRoot(): string {
  const root = join(dir, `r${n++}`);
  mkdirSync(join(root, LAYOUT.slotA), { recursive: true });
  mkdirSync(join(root, LAYOUT.slotB), { recursive: true });
  mkdirSync(join(root, LAYOUT.stateDir), { recursive: true });
  writeFileSync(join(root, LAYOUT.slotA, "agent"), GOOD_A, { mode: 0o755 });
  symlinkSync("slot-a", join(root, LAYOUT.current));
  return root;
}
const running = (root: string) => readFileSync(join(root, LAYOUT.binary), "utf8");

describe("A/B software switch", () => {
  test(
    "a healthy build is kept; the record says healthy",
    async () => {
      const root = freshRoot();
      const out = await switchSoftware(root, GOOD_B, { deadlineMs: 10_000, probe: versionProbe(root) });
      expect(out).toMatchObject({ ok: true, from: "slot-a", to: "slot-b" });
      expect(currentSlot(root)).toBe("slot-b");
      expect(running(root)).toContain('"version":"2"');
      expect(readRecord(root)?.state).toBe("healthy");
      console.log(`switch to a healthy build: ${out.ms} ms`);
    },
    T,
  );

  for (const [what, bytes, deadlineMs] of [
    ["does not start", EXITS, 10_000],
    ["starts and crashes", CRASHES, 10_000],
    ["starts and never answers", HANGS, 1_500],
  ] as const) {
    test(
      `a build that ${what} is rolled back within the deadline and marked bad`,
      async () => {
        const root = freshRoot();
        const out = await switchSoftware(root, bytes, { deadlineMs, probe: versionProbe(root) });
        expect(out.ok).toBe(false);
        expect(out.ms).toBeLessThan(deadlineMs + 2_000);
        expect(currentSlot(root)).toBe("slot-a");
        expect(running(root)).toContain('"version":"1"');
        const rec = readRecord(root);
        expect(rec).toMatchObject({ state: "rolled-back", from: "slot-a", to: "slot-b" });
        expect(rec?.bad).toContain(out.sha256);
        console.log(`rollback, build that ${what}: ${out.ms} ms (${out.reason})`);
        // The same build is refused from now on; a good one still goes in.
        await expect(
          switchSoftware(root, bytes, { deadlineMs, probe: versionProbe(root) }),
        ).rejects.toMatchObject({
          code: "INST_SOFTWARE_BAD",
        });
        expect(
          (await switchSoftware(root, GOOD_B, { deadlineMs: 10_000, probe: versionProbe(root) })).ok,
        ).toBe(true);
      },
      T,
    );
  }

  test(
    "recover restores the previous slot only once an interrupted switch is past its deadline",
    () => {
      const root = freshRoot();
      writeFileSync(join(root, LAYOUT.slotB, "agent"), HANGS, { mode: 0o755 });
      rmSync(join(root, LAYOUT.current));
      symlinkSync("slot-b", join(root, LAYOUT.current));
      const startedAt = new Date("2026-01-01T00:00:00Z");
      writeFileSync(
        softwareRecordPath(root),
        JSON.stringify({
          state: "pending",
          from: "slot-a",
          to: "slot-b",
          sha256: "0".repeat(64),
          startedAt: startedAt.toISOString(),
          deadlineAt: new Date(startedAt.getTime() + 30_000).toISOString(),
          bad: [],
        }),
      );
      expect(recover(root, new Date(startedAt.getTime() + 10_000))).toBeNull();
      expect(currentSlot(root)).toBe("slot-b");
      expect(recover(root, new Date(startedAt.getTime() + 31_000))?.state).toBe("rolled-back");
      expect(currentSlot(root)).toBe("slot-a");
      expect(readRecord(root)?.bad).toEqual(["0".repeat(64)]);
    },
    T,
  );

  test.skipIf(process.getuid?.() !== 0)(
    "SIGKILL at each step of `agent software-switch` leaves a complete slot behind `current`; --recover restores slot-a",
    async () => {
      const cliEntry = resolve(import.meta.dir, "../../bin/agent.ts");
      // Bounded, so the probe's child that a SIGKILLed switch orphans goes away on its own.
      const hangBytes = enc("#!/bin/sh\nexec sleep 5\n");
      const hang = join(dir, "hang.sh");
      writeFileSync(hang, hangBytes);
      chmodSync(hang, 0o755);
      const env = { ...process.env, OUTPOST_LOG_QUIET: "1" };
      // Kill points, each a condition polled with a deadline: at once, once the switch is recorded, once flipped.
      const points: [string, (root: string) => boolean][] = [
        ["spawned", () => true],
        ["recorded pending", (root) => readRecordSafe(root)?.state === "pending"],
        ["flipped to slot-b", (root) => readlinkSync(join(root, LAYOUT.current)) === "slot-b"],
      ];
      for (const [label, reached] of points) {
        const root = freshRoot();
        const proc = Bun.spawn(
          [process.execPath, cliEntry, "software-switch", hang, "--root", root, "--deadline-seconds", "2"],
          { stdout: "ignore", stderr: "ignore", env },
        );
        const until = Date.now() + 20_000;
        while (!reached(root) && Date.now() < until) await Bun.sleep(5);
        expect(reached(root), `kill point "${label}" reached`).toBe(true);
        proc.kill("SIGKILL");
        await proc.exited;
        // Exactly the old or the new agent, complete.
        const target = readlinkSync(join(root, LAYOUT.current));
        expect(["slot-a", "slot-b"]).toContain(target);
        expect([new TextDecoder().decode(GOOD_A), new TextDecoder().decode(hangBytes)]).toContain(
          running(root),
        );
        const rec = readRecordSafe(root);
        if (rec?.state === "pending") {
          const deadline = new Date(rec.deadlineAt).getTime();
          while (Date.now() <= deadline) await Bun.sleep(20);
        }
        const r = Bun.spawnSync(
          [process.execPath, cliEntry, "software-switch", "--recover", "--root", root, "--json"],
          {
            stdout: "pipe",
            env,
          },
        );
        expect(r.exitCode).toBe(0);
        expect(currentSlot(root), label).toBe("slot-a");
        expect(running(root)).toContain('"version":"1"');
      }
    },
    T,
  );
});

/** The record, or null while it does not exist yet (polled during a switch). */
function readRecordSafe(root: string) {
  try {
    return readRecord(root);
  } catch {
    return null;
  }
}
