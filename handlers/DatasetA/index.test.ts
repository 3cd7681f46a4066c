import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Capabilities, type ContentView, viewOverBytes } from "../../core/handler/contract.ts";
import { datasetAHandler, type LoadedDataset, type ScanOutcome } from "./index.ts";
import { SESSION_IDLE_MS, SessionTable } from "./session.ts";

const workDir = mkdtempSync(join(tmpdir(), "outpost-dsa-handler-"));
process.on("exit", () => rmSync(workDir, { recursive: true, force: true }));
const MARK = Buffer.from("handler-test-mark");

function view(files: Record<string, string>, version = 1): ContentView {
  return viewOverBytes({
    type: "DatasetA",
    version,
    signingTime: new Date(0).toISOString(),
    files: Object.keys(files),
    read: (p) => new TextEncoder().encode(files[p]!),
    readText: (p) => files[p]!,
  });
}
const caps: Capabilities = { log: { info() {}, warn() {} }, events: { emit() {} }, workDir };

async function loaded(): Promise<LoadedDataset> {
  const v = view({ "a.ndb": `T.Mark:0:*:${MARK.toString("hex")}\n`, "lookup.txt": "T.Mark\n" });
  await datasetAHandler.validate(v);
  return datasetAHandler.load(v, caps);
}

test("runs in the scanner group with no filesystem, network or exec privilege", () => {
  expect(datasetAHandler.manifest.group).toBe("scanner");
  expect(datasetAHandler.manifest.privileges).toEqual({
    runAs: "agent",
    fs: { mode: "none" },
    net: "none",
    exec: false,
    agent: false,
    hostView: false,
  });
});

test("validate rejects what load could not use, naming file and line", () => {
  const thrown = (v: ContentView) => {
    try {
      datasetAHandler.validate(v);
    } catch (e) {
      return e as { code?: string; file?: string };
    }
    throw new Error("expected validate to throw");
  };
  expect(thrown(view({ "a.ndb": "T.A:0:*:00zz\n" }))).toMatchObject({
    code: "HND_DATASETA_INVALID",
    file: "a.ndb",
  });
  expect(thrown(view({ "README.md": "x" }))).toMatchObject({ code: "HND_DATASETA_INVALID" });
});

describe("API", () => {
  test("scan, and a begin/chunk/end session that spills to the work directory", async () => {
    const l = await loaded();
    const one = (await datasetAHandler.call!(l, "scan", {
      bytes: new Uint8Array(Buffer.concat([Buffer.from("xx"), MARK])),
    })) as ScanOutcome;
    expect(one.detections.map((d) => [d.name, d.lookup])).toEqual([["T.Mark", true]]);

    // A table whose memory threshold is tiny forces the spill path.
    l.sessions = new SessionTable(workDir, 1024);
    const { session } = (await datasetAHandler.call!(l, "begin", { name: "big" })) as { session: string };
    for (let i = 0; i < 4; i++) {
      const chunk = new Uint8Array(4096).fill(0x20);
      if (i === 3) chunk.set(MARK, 100);
      await datasetAHandler.call!(l, "chunk", { session, bytes: chunk });
    }
    expect(readdirSync(workDir).filter((n) => n.endsWith(".spill"))).toHaveLength(1);
    const r = (await datasetAHandler.call!(l, "end", { session })) as ScanOutcome;
    expect(r.size).toBe(4 * 4096);
    expect(r.detections[0]?.offset).toBe(3 * 4096 + 100);
    expect(readdirSync(workDir).filter((n) => n.endsWith(".spill"))).toEqual([]);
    await datasetAHandler.unload!(l);
  });

  test("bad arguments are the caller's error; unknown sessions and methods are named", async () => {
    const l = await loaded();
    await expect(datasetAHandler.call!(l, "scan", { bytes: "not bytes" })).rejects.toMatchObject({
      code: "HND_DATASETA_BAD_ARGS",
    });
    await expect(
      datasetAHandler.call!(l, "scan", { bytes: new Uint8Array(17 * 1024 * 1024) }),
    ).rejects.toMatchObject({
      code: "HND_DATASETA_BAD_ARGS",
    });
    await expect(datasetAHandler.call!(l, "end", { session: "0".repeat(24) })).rejects.toMatchObject({
      code: "HND_DATASETA_NO_SESSION",
    });
    await expect(datasetAHandler.call!(l, "nope", {})).rejects.toMatchObject({ code: "HND_UNKNOWN_METHOD" });
    await datasetAHandler.unload!(l);
  });

  test("idle sessions are swept with their spill files", () => {
    let now = 0;
    const t = new SessionTable(workDir, 10, () => now);
    const id = t.begin("x", {});
    t.chunk(id, new Uint8Array(100));
    expect(readdirSync(workDir).some((n) => n.includes(id))).toBe(true);
    now += SESSION_IDLE_MS + 1;
    expect(t.sweep()).toBe(1);
    expect(readdirSync(workDir).some((n) => n.includes(id))).toBe(false);
    expect(() => t.finish(id)).toThrow(/no open scan session/);
  });

  test("the sweep timer runs only while a session is open", () => {
    const t = new SessionTable(workDir, 1024);
    expect(t.sweeping).toBe(false);
    const a = t.begin("a", {});
    const b = t.begin("b", {});
    expect(t.sweeping).toBe(true);
    t.finish(a);
    expect(t.sweeping).toBe(true);
    t.abort(b);
    expect(t.sweeping).toBe(false);
    t.begin("c", {});
    expect(t.sweeping).toBe(true);
    t.closeAll();
    expect(t.sweeping).toBe(false);
  });

  test("status reports what is loaded", async () => {
    const l = await loaded();
    expect(datasetAHandler.status!(l)).toMatchObject({
      version: 1,
      bodySignatures: 1,
      lookupSignatures: 1,
      openSessions: 0,
    });
    await datasetAHandler.unload!(l);
  });
});
