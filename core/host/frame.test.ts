import { describe, expect, test } from "bun:test";
import { assertTransferable, encodeFrame, FRAME_MAGIC, type FrameError, FrameReader } from "./frame.ts";

function reader(maxBytes = 1 << 20) {
  const messages: unknown[] = [];
  const errors: FrameError[] = [];
  const r = new FrameReader({
    maxBytes,
    onMessage: (m) => messages.push(m),
    onError: (e) => errors.push(e),
  });
  return { r, messages, errors };
}

/** mulberry32, so a failing fuzz run can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("frames", () => {
  test("Uint8Array values travel as attachments, not inside the JSON", () => {
    const big = new Uint8Array(100_000).fill(7);
    const frame = encodeFrame({ t: "req", a: { data: big, nested: [new Uint8Array([1, 2]), "x"] } });
    // The JSON part is tiny; the bytes are appended raw.
    const jsonLength = new DataView(frame.buffer).getUint32(4);
    expect(jsonLength).toBeLessThan(100);
    expect(frame.length).toBeGreaterThan(100_000);
    const { r, messages, errors } = reader();
    r.push(frame);
    expect(errors).toEqual([]);
    const m = messages[0] as { a: { data: Uint8Array; nested: [Uint8Array, string] } };
    expect(m.a.data).toBeInstanceOf(Uint8Array);
    expect(m.a.data.length).toBe(100_000);
    expect(m.a.data[99_999]).toBe(7);
    expect([...m.a.nested[0]]).toEqual([1, 2]);
    expect(m.a.nested[1]).toBe("x");
  });

  test("reassembles frames split at every byte boundary and frames sharing a chunk", () => {
    const a = encodeFrame({ n: 1, b: new Uint8Array([9, 8, 7]) });
    const b = encodeFrame({ n: 2, s: "é😀" });
    const both = new Uint8Array([...a, ...b]);
    for (let cut = 0; cut <= both.length; cut++) {
      const { r, messages, errors } = reader();
      r.push(both.subarray(0, cut));
      r.push(both.subarray(cut));
      expect(errors).toEqual([]);
      expect(messages.map((m) => (m as { n: number }).n)).toEqual([1, 2]);
    }
  });

  test("only JSON values and Uint8Array cross: functions, Maps, class instances, NaN are refused by name", () => {
    const bad: [unknown, string][] = [
      [{ f: () => 1 }, "f: function"],
      [{ m: new Map() }, "m: Map"],
      [{ d: new Date() }, "d: Date"],
      [{ n: [1, Number.NaN] }, "n[1]: NaN"],
      [{ big: 1n }, "big: bigint"],
      [{ $att: 0 }, "$att"],
    ];
    for (const [value, where] of bad) {
      let err: unknown;
      try {
        assertTransferable(value);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: "HND_IPC_UNSERIALIZABLE" });
      expect((err as Error).message).toContain(where);
    }
    expect(() =>
      assertTransferable({ a: [1, "x", null, true, { b: new Uint8Array(1) }], u: undefined }),
    ).not.toThrow();
  });

  test("a message over the limit is refused when encoding", () => {
    expect(() => encodeFrame({ data: new Uint8Array(2048) }, 1024)).toThrow(
      expect.objectContaining({ code: "HND_IPC_TOO_LARGE" }),
    );
  });

  test("an oversized frame is skipped as it arrives (never buffered) and the next frame still decodes", () => {
    const huge = encodeFrame({ data: new Uint8Array(200_000) });
    const next = encodeFrame({ after: true });
    const { r, messages, errors } = reader(64 * 1024);
    for (let i = 0; i < huge.length; i += 4096) r.push(huge.subarray(i, i + 4096));
    r.push(next);
    expect(errors.map((e) => [e.kind, e.fatal])).toEqual([["oversize", false]]);
    expect(messages).toEqual([{ after: true }]);
  });

  test("a bad magic is fatal: the stream lost its framing and nothing after it is trusted", () => {
    const { r, messages, errors } = reader();
    r.push(new TextEncoder().encode("hello, I am not a frame at all"));
    r.push(encodeFrame({ late: true }));
    expect(errors.map((e) => [e.kind, e.fatal])).toEqual([["bad-magic", true]]);
    expect(messages).toEqual([]);
    expect(r.broken).toBe(true);
  });

  test("bad JSON and bad attachment references reject that frame only", () => {
    const { r, messages, errors } = reader();
    const json = new TextEncoder().encode('{"not json');
    const frame = new Uint8Array(12 + json.length);
    const dv = new DataView(frame.buffer);
    dv.setUint16(0, FRAME_MAGIC);
    dv.setUint16(2, 1);
    dv.setUint32(4, json.length);
    dv.setUint32(8, 0);
    frame.set(json, 12);
    r.push(frame);
    const ref = new TextEncoder().encode('{"x":{"$att":3}}');
    const frame2 = new Uint8Array(12 + ref.length);
    const dv2 = new DataView(frame2.buffer);
    dv2.setUint16(0, FRAME_MAGIC);
    dv2.setUint16(2, 1);
    dv2.setUint32(4, ref.length);
    frame2.set(ref, 12);
    r.push(frame2);
    r.push(encodeFrame({ ok: 1 }));
    expect(errors.map((e) => e.kind)).toEqual(["bad-json", "bad-attachment"]);
    expect(messages).toEqual([{ ok: 1 }]);
  });

  test("fuzz: random bytes, random chunking and mutated frames never throw out of the reader", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed);
      const good = encodeFrame({ seed, b: new Uint8Array(Math.floor(rnd() * 300)) });
      const bytes = new Uint8Array(good);
      // Mutate a few bytes, sometimes in the prefix (lengths, magic), sometimes anywhere.
      const flips = Math.floor(rnd() * 4);
      for (let i = 0; i < flips; i++) {
        const at = rnd() < 0.5 ? Math.floor(rnd() * 12) : Math.floor(rnd() * bytes.length);
        bytes[at] = Math.floor(rnd() * 256);
      }
      const noise = new Uint8Array(Math.floor(rnd() * 64)).map(() => Math.floor(rnd() * 256));
      const stream =
        rnd() < 0.5 ? new Uint8Array([...bytes, ...noise]) : new Uint8Array([...noise, ...bytes]);
      const { r } = reader(4096);
      expect(() => {
        for (let i = 0; i < stream.length; ) {
          const n = 1 + Math.floor(rnd() * 40);
          r.push(stream.subarray(i, i + n));
          i += n;
        }
      }).not.toThrow();
    }
  });
});
