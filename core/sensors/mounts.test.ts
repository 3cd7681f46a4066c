import { describe, expect, test } from "bun:test";
import { isAtOrUnder, mountsUnder, parseMountinfo } from "./mounts.ts";

const SAMPLE = [
  "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
  "23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw",
  "24 22 0:22 / /tmp rw shared:2 - tmpfs tmpfs rw",
  "25 22 0:5 / /dev rw shared:3 - devtmpfs udev rw",
  "26 25 0:23 / /dev/shm rw shared:4 - tmpfs tmpfs rw",
  "27 22 0:24 / /home/with\\040space rw shared:5 master:1 - ext4 /dev/sda2 rw",
  "28 22 0:25 / /tmpfoo rw - tmpfs tmpfs rw",
  "",
].join("\n");

describe("mount table", () => {
  test("parses ids, unescaped mount points and the fs type after the optional fields", () => {
    const m = parseMountinfo(SAMPLE);
    expect(m).toHaveLength(7);
    expect(m[5]).toEqual({ id: 27, dev: "0:24", mountPoint: "/home/with space", fsType: "ext4" });
  });

  test("every mount at or under a path is marked; pseudo filesystems are skipped with a reason", () => {
    const { mark, skip } = mountsUnder(parseMountinfo(SAMPLE), ["/"]);
    expect(mark.map((m) => m.mountPoint)).toEqual(["/", "/tmp", "/dev/shm", "/home/with space", "/tmpfoo"]);
    expect(skip.map((s) => [s.mountPoint, s.reason.split(":")[0]])).toEqual([
      ["/proc", "proc"],
      ["/dev", "devtmpfs"],
    ]);
  });

  test("under a path means below it in the tree, not a name prefix", () => {
    expect(mountsUnder(parseMountinfo(SAMPLE), ["/tmp"]).mark.map((m) => m.mountPoint)).toEqual(["/tmp"]);
    expect(isAtOrUnder("/tmp/x", "/tmp/")).toBe(true);
    expect(isAtOrUnder("/tmpfoo", "/tmp")).toBe(false);
  });
});
