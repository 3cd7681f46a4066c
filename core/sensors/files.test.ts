/**
 * The file sensor against the real kernel, on a temp dir each test creates
 * (inode marks: nothing outside it is watched). Both sources must report
 * the same events for the same operations.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SensorEvent } from "./bus.ts";
import { FileSensor } from "./files.ts";

setDefaultTimeout(30_000);
const isRoot = process.getuid?.() === 0;
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !cond()) await Bun.sleep(10);
  return cond();
}

describe.if(isRoot)("file sensor", () => {
  for (const source of ["fanotify", "inotify"] as const) {
    test(`${source}: write, rename, chmod, delete and new subdirectories under a watched dir`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "outpost-files-"));
      const events: SensorEvent[] = [];
      const s = new FileSensor({ paths: [dir], publish: (e) => events.push(...e), source });
      cleanup.push(
        () => s.stop(),
        () => rmSync(dir, { recursive: true, force: true }),
      );
      s.start();
      expect(s.sensor).toBe(source);
      writeFileSync(join(dir, "a"), "x");
      renameSync(join(dir, "a"), join(dir, "b"));
      chmodSync(join(dir, "b"), 0o600);
      mkdirSync(join(dir, "sub"));
      // The new subdirectory is marked when its creation is seen; write in it only after that.
      expect(await until(() => events.some((e) => e.type === "file.rename"))).toBe(true);
      await until(() => (s.status().dirs as number) === 2);
      writeFileSync(join(dir, "sub", "c"), "y");
      unlinkSync(join(dir, "b"));
      expect(await until(() => events.some((e) => e.type === "file.delete"))).toBe(true);
      expect(
        await until(() => events.some((e) => e.path === join(dir, "sub", "c") && e.type === "file.write")),
      ).toBe(true);
      const seen = events.map(
        (e) =>
          `${e.type} ${String(e.path).slice(dir.length)}${e.from ? ` <- ${String(e.from).slice(dir.length)}` : ""}`,
      );
      expect(seen).toContain("file.write /a");
      expect(seen).toContain("file.rename /b <- /a");
      expect(seen).toContain("file.delete /b");
      expect(seen).toContain("file.write /sub/c");
      expect(events.find((e) => e.type === "file.chmod")).toMatchObject({
        path: join(dir, "b"),
        mode: "600",
      });
      if (source === "fanotify") {
        // fanotify names the writer; inotify cannot.
        expect(events.find((e) => e.type === "file.write")?.pid).toBe(process.pid);
      }
    });
  }

  test("a watched path that is a file watches only that name in its directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-files-"));
    const events: SensorEvent[] = [];
    const s = new FileSensor({ paths: [join(dir, "sudoers")], publish: (e) => events.push(...e) });
    cleanup.push(
      () => s.stop(),
      () => rmSync(dir, { recursive: true, force: true }),
    );
    s.start();
    writeFileSync(join(dir, "other"), "1");
    writeFileSync(join(dir, "sudoers"), "2");
    expect(await until(() => events.length > 0)).toBe(true);
    await Bun.sleep(50);
    expect(events.map((e) => e.path)).toEqual([join(dir, "sudoers"), join(dir, "sudoers")]);
  });

  test("no watchable path: the sensor is off and says why", () => {
    const s = new FileSensor({ paths: ["/nonexistent-outpost/x/y"], publish: () => {}, source: "fanotify" });
    s.start();
    expect(s.sensor).toBe("off");
    expect(String(s.status().reason)).toContain("no watched directory");
  });
});
