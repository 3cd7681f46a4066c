/** Kernel record layouts, from crafted bytes (linux/cn_proc.h, linux/fanotify.h, linux/inotify.h). */
import { describe, expect, test } from "bun:test";
import {
  connectorListenMessage,
  FAN,
  fanResponse,
  parseConnector,
  parseFanotify,
  parseInotify,
} from "./parse.ts";

function connectorMsg(what: number, data: number[]): Uint8Array {
  const len = 52 + data.length * 4;
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, len, true);
  dv.setUint16(4, 3, true);
  dv.setUint32(36, what, true);
  dv.setBigUint64(44, 5_000_000n, true);
  for (const [i, x] of data.entries()) dv.setUint32(52 + i * 4, x, true);
  return b;
}

describe("process connector", () => {
  test("fork, exec and exit of processes decode; threads are left out", () => {
    const fork = connectorMsg(1, [10, 10, 20, 20]);
    const thread = connectorMsg(1, [10, 10, 21, 20]);
    const exec = connectorMsg(2, [20, 20]);
    const exit = connectorMsg(0x80000000, [20, 20, 0, 17, 10, 10]);
    const all = new Uint8Array([...fork, ...thread, ...exec, ...exit]);
    expect(parseConnector(all, all.length)).toEqual([
      { what: "fork", pid: 20, ppid: 10, ts: 5000 },
      { what: "exec", pid: 20, ts: 5000 },
      { what: "exit", pid: 20, ppid: 10, code: 0, ts: 5000 },
    ]);
  });

  test("a truncated message is ignored, not misread", () => {
    const m = connectorMsg(2, [20, 20]);
    expect(parseConnector(m, m.length - 10)).toEqual([]);
  });

  test("the subscription message is PROC_CN_MCAST_LISTEN to CN_IDX_PROC", () => {
    const dv = new DataView(connectorListenMessage().buffer);
    expect([dv.getUint32(0, true), dv.getUint32(16, true), dv.getUint32(36, true)]).toEqual([40, 1, 1]);
  });
});

describe("fanotify", () => {
  test("fd-mode events and DFID_NAME / RENAME info records decode", () => {
    const meta = (len: number, mask: number, fd: number, pid: number) => {
      const b = new Uint8Array(24);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, len, true);
      dv.setUint8(4, 3);
      dv.setUint16(6, 24, true);
      dv.setBigUint64(8, BigInt(mask), true);
      dv.setInt32(16, fd, true);
      dv.setInt32(20, pid, true);
      return b;
    };
    const info = (type: number, handle: number[], name: string) => {
      const nameBytes = new TextEncoder().encode(`${name}\0`);
      const len = (20 + handle.length + nameBytes.length + 3) & ~3;
      const b = new Uint8Array(len);
      const dv = new DataView(b.buffer);
      dv.setUint8(0, type);
      dv.setUint16(2, len, true);
      dv.setUint32(12, handle.length, true);
      dv.setInt32(16, 1, true);
      b.set(handle, 20);
      b.set(nameBytes, 20 + handle.length);
      return b;
    };
    const open = meta(24, FAN.OPEN_PERM, 7, 42);
    const oldI = info(10, [1, 2], "a");
    const newI = info(12, [3, 4], "b");
    const rename = new Uint8Array([
      ...meta(24 + oldI.length + newI.length, FAN.RENAME, -1, 43),
      ...oldI,
      ...newI,
    ]);
    const all = new Uint8Array([...open, ...rename]);
    expect(parseFanotify(all, all.length)).toEqual([
      { mask: FAN.OPEN_PERM, fd: 7, pid: 42 },
      { mask: FAN.RENAME, fd: -1, pid: 43, oldDir: "1:0102", oldName: "a", dir: "1:0304", name: "b" },
    ]);
  });

  test("the response is {fd, FAN_ALLOW|FAN_DENY}", () => {
    expect([...fanResponse(7, false)]).toEqual([7, 0, 0, 0, 2, 0, 0, 0]);
    expect([...fanResponse(7, true)]).toEqual([7, 0, 0, 0, 1, 0, 0, 0]);
  });
});

test("inotify records decode with padded names", () => {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  dv.setInt32(0, 3, true);
  dv.setUint32(4, 0x8, true);
  dv.setUint32(12, 16, true);
  b.set(new TextEncoder().encode("job"), 16);
  expect(parseInotify(b, 32)).toEqual([{ wd: 3, mask: 8, cookie: 0, name: "job" }]);
});
