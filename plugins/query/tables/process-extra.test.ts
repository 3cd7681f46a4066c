/** process_open_files / process_envs / process_memory_map against a child we start and against pmap(1). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { genProcessEnvs, genProcessMemoryMap, genProcessOpenFiles, parseMapsLine } from "./process-extra.ts";
import { ctxFor, tool } from "./testutil.ts";

let child: Subprocess;
beforeAll(async () => {
  // fd 3 held open on /etc/hostname; a marker in the environment.
  child = Bun.spawn(["bash", "-c", "exec 3</etc/hostname; echo ready; exec sleep 60"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", OUTPOST_MARKER: "a=b c" },
    stdout: "pipe",
  });
  const reader = child.stdout as ReadableStream<Uint8Array>;
  await reader.getReader().read();
  // Wait (bounded) until bash has exec'd into sleep, so the maps are sleep's.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !tool(["ps", "-o", "comm=", "-p", String(child.pid)]).includes("sleep"))
    await Bun.sleep(10);
});
afterAll(() => child.kill(9));

describe("process tables", () => {
  test("process_open_files lists the child's fd 3 and no sockets", () => {
    const rows = genProcessOpenFiles(ctxFor()).filter((r) => r.pid === child.pid);
    expect(rows).toContainEqual({ pid: child.pid, fd: 3, path: "/etc/hostname" });
    expect(genProcessOpenFiles(ctxFor()).some((r) => String(r.path).startsWith("socket:"))).toBe(false);
  });

  test("process_envs splits at the first '=' only", () => {
    const rows = genProcessEnvs(ctxFor()).filter((r) => r.pid === child.pid);
    expect(rows).toContainEqual({ pid: child.pid, key: "OUTPOST_MARKER", value: "a=b c" });
  });

  test("process_memory_map has the same mappings as pmap", () => {
    const ours = genProcessMemoryMap(ctxFor())
      .filter((r) => r.pid === child.pid)
      .map((r) => BigInt(String(r.start)));
    const pmap = tool(["pmap", "-q", String(child.pid)])
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((a): a is string => !!a && /^[0-9a-f]+$/.test(a))
      .map((a) => BigInt(`0x${a}`));
    expect(ours.length).toBeGreaterThan(3);
    expect(new Set(ours)).toEqual(new Set(pmap));
  });

  test("maps lines: hex offsets, inode 0 is pseudo", () => {
    expect(
      parseMapsLine(7, "7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]"),
    ).toEqual({
      pid: 7,
      start: "0x7ffd1000",
      end: "0x7ffd3000",
      permissions: "rw-p",
      offset: 0,
      device: "00:00",
      inode: 0,
      path: "[stack]",
      pseudo: 1,
    });
    expect(parseMapsLine(7, "55d0 -x")).toBeUndefined();
    expect(parseMapsLine(7, "1000-2000 r-xp 0001a000 fd:01 1234 /usr/bin/x")?.offset).toBe(0x1a000);
  });
});
