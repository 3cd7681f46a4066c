/**
 * The shared transfer region (shared-transfer.ts): leases, the seals that keep a host from changing or
 * shrinking what the supervisor wrote, and the frame encoding that sends leased bytes by reference.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { encodeFrame, FrameReader } from "./frame.ts";
import { SharedTransfer, sharedView, TRANSFER_FD, TransferPool } from "./shared-transfer.ts";

setDefaultTimeout(15_000);

const region = (bytes = 64 * 1024) => {
  const t = SharedTransfer.create(bytes, "outpost-test");
  if (!t) throw new Error("memfd_create/mmap unavailable");
  return t;
};

describe("SharedTransfer leases", () => {
  test("first fit from the lowest offset, released regions coalesce, none free → undefined (fallback)", () => {
    const t = region(64 * 1024);
    const a = t.lease(5000)!; // rounds to 8 KiB
    const b = t.lease(4096)!;
    const c = t.lease(40_000)!;
    expect([a.bytes.byteOffset, b.bytes.byteOffset, c.bytes.byteOffset]).toEqual([0, 8192, 12_288]);
    expect(a.bytes.length).toBe(5000);
    expect(t.lease(20_000)).toBeUndefined(); // 12 KiB left
    expect(t.counters.fallbacks).toBe(1);
    b.release();
    a.release();
    a.release(); // idempotent
    // a and b merged into one 12 KiB hole at 0: the next 12 KiB lease lands there, low.
    expect(t.lease(12_288)!.bytes.byteOffset).toBe(0);
    c.release();
    expect(t.available).toBe(64 * 1024 - 12_288);
    expect(t.counters.peak).toBe(8192 + 4096 + 40_960);
  });

  test("a view of the region is owned; a copy is not; references outside it do not resolve", () => {
    const t = region();
    const l = t.lease(100)!;
    expect(t.owns(l.bytes.subarray(10))).toBe(true);
    expect(t.owns(l.bytes.slice())).toBe(false);
    expect(sharedView(t.buffer, [0, t.size])?.length).toBe(t.size);
    expect(sharedView(t.buffer, [1, t.size])).toBeUndefined();
    expect(sharedView(t.buffer, [-1, 4])).toBeUndefined();
    expect(sharedView(t.buffer, [0.5, 4])).toBeUndefined();
    expect(sharedView(undefined, [0, 4])).toBeUndefined();
  });

  test("sealed: a process holding the fd cannot write it, truncate it, or map it writable; it reads what we wrote", async () => {
    const t = region();
    const l = t.lease(11)!;
    l.bytes.set(new TextEncoder().encode("hello, host"));
    const script = [
      `dd if=/proc/self/fd/${TRANSFER_FD} bs=11 count=1 status=none; echo`,
      `echo x > /proc/self/fd/${TRANSFER_FD} && echo WROTE`,
      `truncate -s 0 /proc/self/fd/${TRANSFER_FD} && echo TRUNCATED`,
      `python3 -c 'import mmap; mmap.mmap(${TRANSFER_FD}, 4096, mmap.MAP_SHARED, mmap.PROT_WRITE)' 2>/dev/null && echo MAPPED`,
      "true",
    ].join("; ");
    const p = Bun.spawn(["sh", "-c", script], { stdio: ["ignore", "pipe", "pipe", t.fd] });
    const out = await new Response(p.stdout).text();
    await p.exited;
    expect(out.split("\n")[0]).toBe("hello, host");
    expect(out).not.toContain("WROTE");
    expect(out).not.toContain("TRUNCATED");
    expect(out).not.toContain("MAPPED");
    // Still intact for us.
    expect(new TextDecoder().decode(l.bytes)).toBe("hello, host");
  });

  test("a pool gives regions only to groups whose handlers all have no filesystem access, once per group", () => {
    const pool = new TransferPool(64 * 1024);
    const none = { privileges: { fs: { mode: "none" } } };
    const read = { privileges: { fs: { mode: "read" } } };
    const a = pool.forSpawn("scanner", [none]);
    expect(a).toBeDefined();
    expect(pool.forSpawn("scanner", [none])).toBe(a!); // a restarted host gets the same region
    expect(pool.of("scanner")).toBe(a!);
    expect(pool.forSpawn("mixed", [none, read])).toBeUndefined();
    expect(pool.forSpawn("empty", [])).toBeUndefined();
  });
});

describe("frames with a shared region", () => {
  test("leased bytes go by reference (the frame does not grow); others stay attachments; both decode", () => {
    const t = region(4 * 1024 * 1024);
    const l = t.lease(1024 * 1024)!;
    l.bytes.fill(7);
    const copy = new Uint8Array([1, 2, 3]);
    const frame = encodeFrame(
      { items: [{ bytes: l.bytes.subarray(0, 1000) }, { bytes: copy }] },
      1 << 20,
      t.buffer,
    );
    expect(frame.length).toBeLessThan(200);
    expect(new TextDecoder().decode(frame)).toContain('{"$shm":[0,1000]}');
    const withoutRegion = encodeFrame({ bytes: l.bytes }, 4 << 20);
    expect(withoutRegion.length).toBeGreaterThan(1024 * 1024);

    const got: unknown[] = [];
    const errors: string[] = [];
    const reader = new FrameReader({
      maxBytes: 1 << 20,
      shared: t.buffer,
      onMessage: (m) => got.push(m),
      onError: (e) => errors.push(e.kind),
    });
    reader.push(frame);
    const m = got[0] as { items: { bytes: Uint8Array }[] };
    expect(errors).toEqual([]);
    expect(m.items[0]!.bytes.length).toBe(1000);
    expect(m.items[0]!.bytes.every((b) => b === 7)).toBe(true);
    expect([...m.items[1]!.bytes]).toEqual([1, 2, 3]);
  });

  test("a reference outside the region, or with no region, is rejected (not fatal); the key is reserved", () => {
    const t = region();
    const errors: string[] = [];
    const got: unknown[] = [];
    const reader = (shared?: ArrayBuffer) =>
      new FrameReader({
        maxBytes: 1 << 20,
        ...(shared ? { shared } : {}),
        onMessage: (m) => got.push(m),
        onError: (e) => errors.push(`${e.kind}:${e.fatal}`),
      });
    const big = region(1 << 20);
    const outside = encodeFrame(
      { b: big.lease(1 << 20)!.bytes.subarray(500_000, 600_000) },
      1 << 20,
      big.buffer,
    );
    reader(t.buffer).push(outside);
    reader(undefined).push(encodeFrame({ b: t.lease(10)!.bytes }, 1 << 20, t.buffer));
    expect(errors).toEqual(["bad-attachment:false", "bad-attachment:false"]);
    expect(got).toEqual([]);
    expect(() => encodeFrame({ $shm: [0, 1] })).toThrow("reserved");
  });
});
