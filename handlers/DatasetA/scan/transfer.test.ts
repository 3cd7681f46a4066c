/**
 * Bytes to the scanner through its shared transfer region (core/host/shared-transfer.ts), with the
 * real sandboxed DatasetA host process: `agent scan`'s path (whole files and streamed chunks) reads
 * into leases and finds what is in them; a scanner crash mid-call fails that call, gives its lease
 * back, and the restarted host maps the same region and scans the new bytes in it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../../core/config.ts";
import { type ContentView, viewOverBytes } from "../../../core/handler/contract.ts";
import { HostManager } from "../../../core/host/manager.ts";
import { log } from "../../../core/log.ts";
import { defaultRegistry } from "../../index.ts";
import { ScanService } from "./service.ts";

setDefaultTimeout(60_000);

const root = mkdtempSync(join(tmpdir(), "outpost-transfer-"));
const stateDir = join(root, "state");
const quiet = log.child({ component: "test" });
quiet.setStderr(false);
const hex = (s: string) => Buffer.from(s).toString("hex");
const sigs = new TextEncoder().encode(`T.Transfer.Mark:0:*:${hex("outpost-transfer-mark")}\n`);
const view: ContentView = viewOverBytes({
  type: "DatasetA",
  version: 1,
  signingTime: new Date().toISOString(),
  files: ["main.ndb"],
  read: () => sigs,
  readText: () => new TextDecoder().decode(sigs),
});
let hosts: HostManager;
let service: ScanService;
let piped: ScanService;

beforeAll(async () => {
  hosts = new HostManager({
    stateDir,
    registry: defaultRegistry(),
    log: quiet,
    config: parseConfig({ stateDir, hosts: { restartBackoffMs: 0 } }).hosts,
    emit() {},
    onContentFailure: async () => null,
  });
  await hosts.validate("DatasetA", view);
  await hosts.commit(await hosts.prepare("DatasetA", view));
  const call = (t: string, m: string, a: unknown) => hosts.call(t, m, a);
  service = new ScanService({
    call,
    policy: { lookups: false, samples: false },
    transfer: () => hosts.transfer("DatasetA"),
  });
  piped = new ScanService({ call, policy: { lookups: false, samples: false } });
});

afterAll(async () => {
  await hosts?.unloadAll();
  rmSync(root, { recursive: true, force: true });
});

const scannerPid = () => hosts.hosts().find((h) => h.group === "scanner")?.pid;

describe("shared transfer to the DatasetA host", () => {
  test("agent scan reads files into the region, streams large ones chunk by chunk, and finds the same as the pipe", async () => {
    const dir = join(root, "tree");
    mkdirSync(dir);
    writeFileSync(join(dir, "clean.txt"), "nothing here ".repeat(1000));
    writeFileSync(join(dir, "mark.txt"), `prefix outpost-transfer-mark suffix`);
    // 20 MiB: three streamed chunks (8 MiB each), the mark in the last one.
    const big = Buffer.alloc(20 * 1024 * 1024, 0x41);
    big.write("outpost-transfer-mark", big.length - 100);
    writeFileSync(join(dir, "big.bin"), big);
    const region = hosts.transfer("DatasetA")!;
    expect(region).toBeDefined();
    const leasesBefore = region.counters.leases;
    const viaRegion = await service.scanPaths([dir]);
    const viaPipe = await piped.scanPaths([dir]);
    const found = (r: typeof viaRegion) =>
      r.detections.map((d) => `${d.target.split("/").pop()}:${d.name}`).sort();
    expect(found(viaRegion)).toEqual(["big.bin:T.Transfer.Mark", "mark.txt:T.Transfer.Mark"]);
    expect(found(viaPipe)).toEqual(found(viaRegion));
    // Two small files + three chunks of the big one went through leases; every lease came back.
    expect(region.counters.leases - leasesBefore).toBe(5);
    expect(region.available).toBe(region.size);
  });

  test("a scanner crash mid-call fails the call and frees its lease; the restarted host reads the same region", async () => {
    const region = hosts.transfer("DatasetA")!;
    const pid = scannerPid()!;
    expect(pid).toBeGreaterThan(0);
    const lease = service.lease(4 * 1024 * 1024)!;
    lease.bytes.fill(0x42);
    lease.bytes.set(new TextEncoder().encode("outpost-transfer-mark"), 4 * 1024 * 1024 - 50);
    const call = service
      .scanBytesMany([{ bytes: lease.bytes, name: "crash-me" }])
      .finally(() => lease.release());
    process.kill(pid, "SIGKILL");
    const outcome = await call.then(
      (r) => ({ ok: true as const, r }),
      (e: { code?: string }) => ({ ok: false as const, code: e.code }),
    );
    // Killed before or while it scanned: the call failed with the host, or (it answered first) found the mark.
    if (outcome.ok) expect(outcome.r[0]!.detections.map((d) => d.name)).toEqual(["T.Transfer.Mark"]);
    else expect(outcome.code).toBe("HND_HOST_CRASHED");
    expect(region.available).toBe(region.size);

    // The same offset now holds other bytes: the new host process must see them, not the old ones.
    const next = service.lease(4 * 1024 * 1024)!;
    expect(next.bytes.byteOffset).toBe(lease.bytes.byteOffset);
    next.bytes.fill(0x43);
    const deadline = Date.now() + 30_000;
    let clean: Awaited<ReturnType<ScanService["scanBytesMany"]>> | undefined;
    while (!clean && Date.now() < deadline) {
      clean = await service.scanBytesMany([{ bytes: next.bytes, name: "after-restart" }]).catch(async () => {
        await Bun.sleep(50); // the supervisor is still restarting the group
        return undefined;
      });
    }
    expect(clean?.[0]?.detections).toEqual([]);
    expect(scannerPid()).not.toBe(pid);
    next.bytes.set(new TextEncoder().encode("outpost-transfer-mark"), 10);
    const hit = await service.scanBytesMany([{ bytes: next.bytes.subarray(0, 100), name: "again" }]);
    next.release();
    expect(hit[0]!.detections.map((d) => d.name)).toEqual(["T.Transfer.Mark"]);
    expect(region.available).toBe(region.size);
    expect(hosts.transfer("DatasetA")).toBe(region);
  });
});
