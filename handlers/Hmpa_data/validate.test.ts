import { describe, expect, test } from "bun:test";
import { HandlerError } from "../../core/errors.ts";
import { Allowlist, type InvalidReason, validateAllowlist } from "./reader.ts";
import { reseal, syntheticThumbprints } from "./testutil.ts";
import { buildAllowlist } from "./writer.ts";

// 1000 entries → b = 6: 64 buckets of ~16, directory at 64, tags at 324, exts at 4324.
const N = 1000;
const BASE = buildAllowlist(syntheticThumbprints("StackPivot", 0, N));
const DIR = 64;
const SLOTS = 65;
const TAGS = DIR + 4 * SLOTS;
const EXTS = TAGS + 4 * N;

function mutated(
  edit: (file: Uint8Array, view: DataView) => void,
  opts: { reseal?: boolean } = {},
): Uint8Array {
  const file = BASE.slice();
  edit(file, new DataView(file.buffer));
  return opts.reseal === false ? file : reseal(file);
}

function rejection(bytes: Uint8Array, check: (b: Uint8Array) => unknown = (b) => validateAllowlist(b)) {
  try {
    check(bytes);
  } catch (e) {
    if (!(e instanceof HandlerError)) throw e;
    return e;
  }
  throw new Error("accepted a corrupt allowlist");
}

function expectReason(bytes: Uint8Array, reason: InvalidReason) {
  const e = rejection(bytes);
  expect(e.code).toBe("HND_HMPA_INVALID");
  expect(e.file).toBe("allowlist.bin");
  expect(e.message).toStartWith("allowlist.bin: ");
  expect(e.details?.reason).toBe(reason);
  return e;
}

/** First bucket with at least three entries, as [start, end). */
function roomyBucket(file: Uint8Array): [number, number] {
  const view = new DataView(file.buffer);
  for (let k = 0; k < SLOTS - 1; k++) {
    const start = view.getUint32(DIR + 4 * k, true);
    const end = view.getUint32(DIR + 4 * (k + 1), true);
    if (end - start >= 3) return [start, end];
  }
  throw new Error("no bucket with three entries");
}

describe("validateAllowlist", () => {
  test("accepts the builder's output", () => {
    expect(validateAllowlist(BASE)).toMatchObject({ version: 1, bucketBits: 6, entryCount: N });
  });

  test("truncated: shorter than the header, or than the entries", () => {
    expectReason(BASE.subarray(0, 0), "truncated");
    expectReason(BASE.subarray(0, 63), "truncated");
    const e = expectReason(BASE.subarray(0, BASE.length - 1), "truncated");
    expect(e.message).toContain(`${BASE.length - 1} of ${BASE.length} bytes`);
  });

  test("trailing bytes after the entries", () => {
    const longer = new Uint8Array(BASE.length + 1);
    longer.set(BASE);
    expectReason(longer, "trailing-bytes");
  });

  test("bad magic", () => {
    expectReason(
      mutated((f) => (f[0] = 0x58)),
      "bad-magic",
    );
    expectReason(
      mutated((f) => (f[7] = 0x20)),
      "bad-magic",
    );
    expectReason(new TextEncoder().encode("StackPivot:0123\n".repeat(10)), "bad-magic");
  });

  test("unsupported format version", () => {
    const e = expectReason(
      mutated((_, v) => v.setUint16(8, 2, true)),
      "unsupported-version",
    );
    expect(e.message).toContain("version 2");
  });

  test("bad header fields: remainder bits, flags, reserved, bucket bits > 24, declared length", () => {
    expectReason(
      mutated((_, v) => v.setUint8(11, 32)),
      "bad-header",
    );
    expectReason(
      mutated((_, v) => v.setUint32(12, 1, true)),
      "bad-header",
    );
    expectReason(
      mutated((_, v) => v.setUint32(20, 1, true)),
      "bad-header",
    );
    expectReason(
      mutated((_, v) => v.setUint8(10, 25)),
      "bad-header",
    );
    expectReason(
      mutated((_, v) => v.setBigUint64(24, BigInt(BASE.length + 1), true)),
      "bad-header",
    );
    // A changed entry count no longer matches the declared length.
    expectReason(
      mutated((_, v) => v.setUint32(16, N + 1, true)),
      "bad-header",
    );
  });

  test("bucket bits that are not canonical for the entry count", () => {
    const e = expectReason(
      mutated((_, v) => v.setUint8(10, 5)),
      "bucket-bits",
    );
    expect(e.details).toMatchObject({ bucketBits: 5, expected: 6 });
  });

  test("checksum mismatch: any flipped bit in the body, the header or the checksum itself", () => {
    for (const at of [TAGS + 17, EXTS + 3, DIR + 8, 33, 63]) {
      expectReason(
        mutated((f) => (f[at]! ^= 0x01), { reseal: false }),
        "checksum-mismatch",
      );
    }
  });

  test("directory must start at 0, end at n and never decrease", () => {
    expectReason(
      mutated((_, v) => v.setUint32(DIR, 1, true)),
      "directory",
    );
    expectReason(
      mutated((_, v) => v.setUint32(DIR + 4 * (SLOTS - 1), N - 1, true)),
      "directory",
    );
    const decreasing = mutated((_, v) => {
      const a = v.getUint32(DIR + 4 * 10, true);
      const b = v.getUint32(DIR + 4 * 11, true);
      v.setUint32(DIR + 4 * 10, b, true);
      v.setUint32(DIR + 4 * 11, a, true);
    });
    expect(expectReason(decreasing, "directory").message).toContain("decreases at bucket 11");
  });

  test("entries out of order within a bucket", () => {
    const [start] = roomyBucket(BASE);
    const swapped = mutated((f, v) => {
      const tagA = v.getUint32(TAGS + 4 * start, true);
      const tagB = v.getUint32(TAGS + 4 * (start + 1), true);
      v.setUint32(TAGS + 4 * start, tagB, true);
      v.setUint32(TAGS + 4 * (start + 1), tagA, true);
      const extA = f[EXTS + start]!;
      f[EXTS + start] = f[EXTS + start + 1]!;
      f[EXTS + start + 1] = extA;
    });
    expect(expectReason(swapped, "unsorted-entries").details).toMatchObject({ index: start + 1 });
    // Same tag, extensions descending.
    const extDescending = mutated((f, v) => {
      v.setUint32(TAGS + 4 * (start + 1), v.getUint32(TAGS + 4 * start, true), true);
      f[EXTS + start] = 9;
      f[EXTS + start + 1] = 8;
    });
    expectReason(extDescending, "unsorted-entries");
  });

  test("duplicate entries within a bucket", () => {
    const [start] = roomyBucket(BASE);
    const duplicated = mutated((f, v) => {
      v.setUint32(TAGS + 4 * (start + 1), v.getUint32(TAGS + 4 * start, true), true);
      f[EXTS + start + 1] = f[EXTS + start]!;
    });
    expect(expectReason(duplicated, "duplicate-entry").details).toMatchObject({ index: start + 1 });
  });

  test("names the file it is given", () => {
    const e = rejection(BASE.subarray(0, 10), (b) => validateAllowlist(b, { file: "payload/allowlist.bin" }));
    expect(e.file).toBe("payload/allowlist.bin");
    expect(e.message).toStartWith("payload/allowlist.bin: truncated");
  });
});

describe("Allowlist.from", () => {
  test("repeats the O(1) header and size checks", () => {
    const check = (b: Uint8Array) => Allowlist.from(b);
    expect(rejection(BASE.subarray(0, BASE.length - 5), check).details?.reason).toBe("truncated");
    expect(
      rejection(
        mutated((f) => (f[1] = 0)),
        check,
      ).details?.reason,
    ).toBe("bad-magic");
    expect(
      rejection(
        mutated((_, v) => v.setUint8(10, 7)),
        check,
      ).details?.reason,
    ).toBe("bucket-bits");
  });

  test("does not scan the body: that is validateAllowlist's job, run before a switch", () => {
    const corrupt = mutated((f) => (f[TAGS]! ^= 0xff), { reseal: false });
    expect(Allowlist.from(corrupt).size).toBe(N);
    expectReason(corrupt, "checksum-mismatch");
  });
});
