/**
 * HOST_UID_NOT_DROPPED (issue 12 item 7): the pure parts — when the
 * unprivileged user cannot reach the host program, and the health reason
 * raised and cleared. The end-to-end case (a closed directory above the
 * state dir, a real host, `agent status`) is test/host/uid-health.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { HealthBoard } from "../health/reasons.ts";
import { programBlocker, reportUidDrop } from "./health-report.ts";

const nobody = { uid: 65534, gid: 65534, user: "nobody" };
const dirs: Record<string, { mode: number; uid: number; gid: number }> = {
  "/": { mode: 0o755, uid: 0, gid: 0 },
  "/opt": { mode: 0o755, uid: 0, gid: 0 },
  "/opt/outpost": { mode: 0o755, uid: 0, gid: 0 },
  "/root": { mode: 0o700, uid: 0, gid: 0 },
  "/root/bin": { mode: 0o755, uid: 0, gid: 0 },
  "/srv": { mode: 0o750, uid: 0, gid: 65534 },
};
const stat = (p: string) => {
  const d = dirs[p];
  if (!d) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
  return d;
};

describe("programBlocker", () => {
  test("an executable under searchable directories is reachable", () => {
    expect(programBlocker(nobody, "/opt/outpost/agent", "/opt/outpost", stat)).toBeUndefined();
  });
  test("the first closed directory on the way to the executable is named", () => {
    expect(programBlocker(nobody, "/root/bin/agent", "/root/bin", stat)).toBe(
      "/root is not searchable by nobody (uid 65534), so it cannot start the host program",
    );
  });
  test("group search counts for the user's own group", () => {
    expect(programBlocker(nobody, "/srv/agent", "/srv", stat)).toBeUndefined();
    expect(programBlocker({ ...nobody, gid: 1 }, "/srv/agent", "/srv", stat)).toContain(
      "/srv is not searchable",
    );
  });
  test("from source the checkout counts too", () => {
    expect(programBlocker(nobody, "/opt/outpost/bun", "/root/bin", stat)).toContain(
      "/root is not searchable",
    );
  });
});

describe("reportUidDrop", () => {
  test("raises amber with the fix, and clears once the uid drops", () => {
    const board = new HealthBoard();
    const o = { group: "scanner", wanted: true, user: "nobody", stateDir: "/var/lib/outpost" };
    reportUidDrop(board, { ...o, unreachable: "/var/lib is not searchable by nobody (uid 65534)" });
    const r = board.get("host:scanner", "HOST_UID_NOT_DROPPED");
    expect(r?.level).toBe("amber");
    expect(r?.message).toContain("chmod o+x");
    expect(r?.message).toContain("/var/lib is not searchable");
    reportUidDrop(board, o);
    expect(board.get("host:scanner", "HOST_UID_NOT_DROPPED")).toBeUndefined();
  });
  test("a group that runs as root by design is not a degradation", () => {
    const board = new HealthBoard();
    reportUidDrop(board, { group: "query", wanted: false, unreachable: "x", user: "nobody", stateDir: "/s" });
    expect(board.list()).toEqual([]);
  });
});
