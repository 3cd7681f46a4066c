import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PackageError } from "../errors.ts";
import { readTar, type TarEntry, writeTar } from "./tar.ts";

const enc = new TextEncoder();
const text = (s: string) => enc.encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const tmpRoot = mkdtempSync(join(tmpdir(), "outpost-tar-"));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function tmp(): string {
  const d = join(tmpRoot, String(tmpCount++));
  mkdirSync(d);
  return d;
}

function sh(cwd: string, ...argv: string[]): void {
  const r = Bun.spawnSync(argv, { cwd, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr.toString()}`);
}

/** Builds one raw tar header with arbitrary (possibly hostile) fields. */
function rawHeader(f: {
  name: string | Uint8Array;
  size?: number;
  typeflag?: string;
  mode?: string;
  prefix?: string;
  magic?: string;
  sizeField?: Uint8Array;
  badChecksum?: boolean;
}): Uint8Array {
  const h = new Uint8Array(512);
  h.set(typeof f.name === "string" ? text(f.name) : f.name, 0);
  h.set(text(f.mode ?? "0000644\0"), 100);
  h.set(text("0000000\0"), 108);
  h.set(text("0000000\0"), 116);
  h.set(f.sizeField ?? text(`${(f.size ?? 0).toString(8).padStart(11, "0")}\0`), 124);
  h.set(text("00000000000\0"), 136);
  h.fill(0x20, 148, 156);
  h[156] = (f.typeflag ?? "0").charCodeAt(0);
  h.set(text(f.magic ?? "ustar\u000000"), 257);
  if (f.prefix) h.set(text(f.prefix), 345);
  let sum = h.reduce((a, b) => a + b, 0);
  if (f.badChecksum) sum += 1;
  h.set(text(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  return h;
}

/** Concatenates header + data blocks and the end marker (unless `end: false`). */
function rawTar(parts: { header: Uint8Array; data?: Uint8Array }[], end = true): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    chunks.push(p.header);
    if (p.data && p.data.length > 0) {
      const padded = new Uint8Array(Math.ceil(p.data.length / 512) * 512);
      padded.set(p.data);
      chunks.push(padded);
    }
  }
  if (end) chunks.push(new Uint8Array(1024));
  return concat(chunks);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

function fileEntry(name: string, content = "x", extra: Parameters<typeof rawHeader>[0] | object = {}) {
  const data = text(content);
  return { header: rawHeader({ name, size: data.length, ...extra }), data };
}

function rejects(
  bytes: Uint8Array,
  code: string,
  opts: { maxEntries?: number; maxEntryBytes?: number } = {},
): PackageError {
  let caught: unknown;
  try {
    readTar(bytes, { file: "evil.tar", ...opts });
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(PackageError);
  const err = caught as PackageError;
  expect(err.code).toBe(code);
  expect(err.file).toBe("evil.tar");
  expect(err.message).toContain("evil.tar");
  return err;
}

function summary(entries: TarEntry[]) {
  return entries.map((e) => ({ path: e.path, type: e.type, mode: e.mode, data: dec(e.data) }));
}

describe("writeTar", () => {
  const entries = [
    { path: "manifest.json", data: text("{}\n") },
    { path: "payload/", data: new Uint8Array(0) },
    { path: "payload/a.bin", data: new Uint8Array(1000).fill(7) },
  ];

  test("round-trips through readTar with fixed modes", () => {
    const got = readTar(writeTar(entries), { file: "t.tar" });
    expect(got.map((e) => [e.path, e.type, e.mode, e.data.length])).toEqual([
      ["manifest.json", "file", 0o644, 3],
      ["payload/", "directory", 0o755, 0],
      ["payload/a.bin", "file", 0o644, 1000],
    ]);
    expect(got[2]!.data.every((b) => b === 7)).toBe(true);
  });

  test("is deterministic and writes zero mtime/uid/gid and no owner names", () => {
    const a = writeTar(entries);
    const b = writeTar(entries.map((e) => ({ ...e, data: e.data.slice() })));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    // header, 1 data block, dir header, header, 2 data blocks, 2 end blocks
    expect(a.length).toBe(512 * 8);
    const h = a.subarray(0, 512);
    expect(dec(h.subarray(108, 116))).toBe("0000000\0");
    expect(dec(h.subarray(116, 124))).toBe("0000000\0");
    expect(dec(h.subarray(136, 148))).toBe("00000000000\0");
    expect(h.subarray(265, 329).every((x) => x === 0)).toBe(true);
  });

  test("GNU tar lists and extracts what it writes, including prefix-split long paths", () => {
    const dir = tmp();
    const longDir = `payload/${"d".repeat(95)}/${"e".repeat(40)}/`;
    const longFile = `${longDir}${"f".repeat(90)}.txt`;
    expect(enc.encode(longFile).length).toBeGreaterThan(200);
    writeFileSync(
      join(dir, "t.tar"),
      writeTar([
        { path: "payload/", data: new Uint8Array(0) },
        { path: longDir, data: new Uint8Array(0) },
        { path: longFile, data: text("deep") },
        { path: `payload/${"z".repeat(100)}/`, data: new Uint8Array(0) },
      ]),
    );
    const list = Bun.spawnSync(["tar", "-tf", "t.tar"], { cwd: dir });
    expect(list.exitCode).toBe(0);
    // the 100-byte directory component only fits without its conventional trailing "/"
    expect(list.stdout.toString().trim().split("\n")).toEqual([
      "payload/",
      longDir,
      longFile,
      `payload/${"z".repeat(100)}`,
    ]);
    sh(dir, "tar", "-xf", "t.tar");
    expect(readFileSync(join(dir, longFile), "utf8")).toBe("deep");
    expect(statSync(join(dir, `payload/${"z".repeat(100)}`)).isDirectory()).toBe(true);
    // and our reader re-joins prefix + name
    expect(readTar(readFileSync(join(dir, "t.tar")), { file: "t.tar" }).map((e) => e.path)).toEqual([
      "payload/",
      longDir,
      longFile,
      `payload/${"z".repeat(100)}/`,
    ]);
  });

  test("refuses paths longer than 255 bytes or that cannot be split", () => {
    const tooLong = `${"a/".repeat(127)}bb`; // 256 bytes
    expect(() => writeTar([{ path: tooLong, data: text("x") }])).toThrow(
      expect.objectContaining({ code: "PKG_TAR_PATH_TOO_LONG" }),
    );
    const longComponent = `dir/${"n".repeat(101)}`;
    expect(() => writeTar([{ path: longComponent, data: text("x") }])).toThrow(
      expect.objectContaining({ code: "PKG_TAR_PATH_TOO_LONG" }),
    );
    const exactly255 = `${"p".repeat(154)}/${"n".repeat(100)}`;
    expect(enc.encode(exactly255).length).toBe(255);
    expect(readTar(writeTar([{ path: exactly255, data: text("x") }]), { file: "t" })[0]!.path).toBe(
      exactly255,
    );
  });

  test("refuses what the reader would refuse", () => {
    const cases: [string, string][] = [
      ["../x", "PKG_TAR_TRAVERSAL"],
      ["/etc/passwd", "PKG_TAR_ABSOLUTE_PATH"],
      ["./x", "PKG_TAR_BAD_PATH"],
      ["a\\b", "PKG_TAR_BAD_PATH"],
    ];
    for (const [path, code] of cases) {
      expect(() => writeTar([{ path, data: text("x") }])).toThrow(expect.objectContaining({ code }));
    }
    expect(() =>
      writeTar([
        { path: "a", data: text("1") },
        { path: "a", data: text("2") },
      ]),
    ).toThrow(expect.objectContaining({ code: "PKG_TAR_DUPLICATE" }));
    expect(() => writeTar([{ path: "d/", data: text("x") }])).toThrow(
      expect.objectContaining({ code: "PKG_TAR_BAD_HEADER" }),
    );
  });
});

describe("readTar accepts system tar output", () => {
  function makeTree(): string {
    const dir = tmp();
    mkdirSync(join(dir, "payload/sub/deeper"), { recursive: true });
    writeFileSync(join(dir, "manifest.json"), "{}\n");
    writeFileSync(join(dir, "payload/sub/a.txt"), "alpha");
    writeFileSync(join(dir, "payload/sub/deeper/b.bin"), new Uint8Array(3000).fill(1));
    writeFileSync(join(dir, "payload/empty"), "");
    return dir;
  }

  for (const format of ["ustar", "gnu"]) {
    test(`GNU tar --format=${format}`, () => {
      const dir = makeTree();
      sh(dir, "tar", `--format=${format}`, "--sort=name", "-cf", "t.tar", "manifest.json", "payload");
      const got = readTar(readFileSync(join(dir, "t.tar")), { file: "t.tar" });
      expect(summary(got).map((e) => [e.path, e.type, e.data.length])).toEqual([
        ["manifest.json", "file", 3],
        ["payload/", "directory", 0],
        ["payload/empty", "file", 0],
        ["payload/sub/", "directory", 0],
        ["payload/sub/a.txt", "file", 5],
        ["payload/sub/deeper/", "directory", 0],
        ["payload/sub/deeper/b.bin", "file", 3000],
      ]);
      expect(dec(got[4]!.data)).toBe("alpha");
    });
  }

  test("GNU tar --format=ustar with a path longer than 100 bytes", () => {
    const dir = tmp();
    const deep = `payload/${"x".repeat(90)}/${"y".repeat(60)}`;
    mkdirSync(join(dir, deep), { recursive: true });
    writeFileSync(join(dir, deep, "f.txt"), "long");
    sh(dir, "tar", "--format=ustar", "-cf", "t.tar", "payload");
    const got = readTar(readFileSync(join(dir, "t.tar")), { file: "t.tar" });
    const f = got.find((e) => e.path === `${deep}/f.txt`);
    expect(f && dec(f.data)).toBe("long");
  });

  test("GNU format long names (././@LongLink) are refused", () => {
    const dir = tmp();
    const deep = `payload/${"x".repeat(120)}`;
    mkdirSync(join(dir, deep), { recursive: true });
    writeFileSync(join(dir, deep, "f.txt"), "long");
    sh(dir, "tar", "--format=gnu", "-cf", "t.tar", "payload");
    expect(rejects(readFileSync(join(dir, "t.tar")), "PKG_TAR_UNSUPPORTED_ENTRY").message).toContain(
      "GNU long name",
    );
  });

  test("pax headers (tar --format=posix) are refused", () => {
    const dir = tmp();
    writeFileSync(join(dir, "a.txt"), "a");
    sh(dir, "tar", "--format=posix", "-cf", "t.tar", "a.txt");
    expect(rejects(readFileSync(join(dir, "t.tar")), "PKG_TAR_UNSUPPORTED_ENTRY").message).toContain("pax");
  });

  test("symlinks, hard links and fifos from system tar are refused", () => {
    const dir = tmp();
    writeFileSync(join(dir, "target"), "t");
    symlinkSync("/etc/passwd", join(dir, "sym"));
    sh(dir, "tar", "--format=ustar", "-cf", "sym.tar", "sym");
    expect(rejects(readFileSync(join(dir, "sym.tar")), "PKG_TAR_LINK").message).toContain("symbolic");
    sh(dir, "ln", "target", "hard");
    sh(dir, "tar", "--format=ustar", "-cf", "hard.tar", "target", "hard");
    expect(rejects(readFileSync(join(dir, "hard.tar")), "PKG_TAR_LINK").message).toContain("hard");
    sh(dir, "mkfifo", "fifo");
    sh(dir, "tar", "--format=ustar", "-cf", "fifo.tar", "fifo");
    rejects(readFileSync(join(dir, "fifo.tar")), "PKG_TAR_FIFO");
  });
});

describe("readTar rejections", () => {
  test("'..' components", () => {
    rejects(rawTar([fileEntry("../evil")]), "PKG_TAR_TRAVERSAL");
    rejects(rawTar([fileEntry("payload/../../evil")]), "PKG_TAR_TRAVERSAL");
    rejects(rawTar([fileEntry("evil", "x", { prefix: "payload/.." })]), "PKG_TAR_TRAVERSAL");
  });

  test("absolute paths, including Windows drive paths", () => {
    rejects(rawTar([fileEntry("/etc/cron.d/evil")]), "PKG_TAR_ABSOLUTE_PATH");
    rejects(rawTar([fileEntry("C:/Windows/evil")]), "PKG_TAR_ABSOLUTE_PATH");
  });

  test("non-canonical or unsafe names", () => {
    rejects(rawTar([fileEntry("./a")]), "PKG_TAR_BAD_PATH");
    rejects(rawTar([fileEntry("a//b")]), "PKG_TAR_BAD_PATH");
    rejects(rawTar([fileEntry("a\\..\\b")]), "PKG_TAR_BAD_PATH");
    rejects(rawTar([fileEntry("a\nb")]), "PKG_TAR_BAD_PATH");
    rejects(rawTar([fileEntry("file/")]), "PKG_TAR_BAD_PATH");
    rejects(
      rawTar([{ header: rawHeader({ name: new Uint8Array([0x61, 0xff, 0x62]) }) }]),
      "PKG_TAR_BAD_PATH",
    );
  });

  test("symlinks and hard links", () => {
    rejects(rawTar([{ header: rawHeader({ name: "s", typeflag: "2" }) }]), "PKG_TAR_LINK");
    rejects(rawTar([{ header: rawHeader({ name: "h", typeflag: "1" }) }]), "PKG_TAR_LINK");
  });

  test("character and block devices", () => {
    rejects(rawTar([{ header: rawHeader({ name: "c", typeflag: "3" }) }]), "PKG_TAR_DEVICE");
    rejects(rawTar([{ header: rawHeader({ name: "b", typeflag: "4" }) }]), "PKG_TAR_DEVICE");
  });

  test("fifos", () => {
    rejects(rawTar([{ header: rawHeader({ name: "p", typeflag: "6" }) }]), "PKG_TAR_FIFO");
  });

  test("extension and unknown entry types", () => {
    for (const t of ["x", "g", "L", "K", "7", "S", "V", "D"]) {
      rejects(rawTar([{ header: rawHeader({ name: "e", typeflag: t }) }]), "PKG_TAR_UNSUPPORTED_ENTRY");
    }
  });

  test("duplicate paths, also differing only in case or a trailing slash", () => {
    rejects(rawTar([fileEntry("a"), fileEntry("a")]), "PKG_TAR_DUPLICATE");
    rejects(rawTar([fileEntry("README"), fileEntry("readme")]), "PKG_TAR_DUPLICATE");
    rejects(
      rawTar([
        { header: rawHeader({ name: "d/", typeflag: "5" }) },
        { header: rawHeader({ name: "d", typeflag: "5" }) },
      ]),
      "PKG_TAR_DUPLICATE",
    );
  });

  test("a path used both as a file and as a directory", () => {
    rejects(rawTar([fileEntry("a"), fileEntry("a/b")]), "PKG_TAR_PATH_CONFLICT");
    rejects(rawTar([fileEntry("a/b"), fileEntry("a")]), "PKG_TAR_PATH_CONFLICT");
    rejects(
      rawTar([fileEntry("a"), { header: rawHeader({ name: "a/", typeflag: "5" }) }]),
      "PKG_TAR_DUPLICATE",
    );
  });

  test("bad header checksum", () => {
    rejects(
      rawTar([{ ...fileEntry("a"), header: rawHeader({ name: "a", size: 1, badChecksum: true }) }]),
      "PKG_TAR_CHECKSUM",
    );
    const flipped = writeTar([{ path: "a", data: text("x") }]);
    flipped[3] = 0x41; // a bit flip in the name field
    rejects(flipped, "PKG_TAR_CHECKSUM");
  });

  test("malformed headers", () => {
    rejects(rawTar([{ header: rawHeader({ name: "v7", magic: "\0\0\0\0\0\0\0\0" }) }]), "PKG_TAR_BAD_HEADER");
    const base256 = new Uint8Array(12);
    base256[0] = 0x80;
    base256[11] = 1;
    rejects(rawTar([{ header: rawHeader({ name: "big", sizeField: base256 }) }]), "PKG_TAR_BAD_HEADER");
    rejects(rawTar([{ header: rawHeader({ name: "m", mode: "06x4\0\0\0\0" }) }]), "PKG_TAR_BAD_HEADER");
    rejects(
      rawTar([{ header: rawHeader({ name: "d/", typeflag: "5", size: 5 }), data: text("hello") }]),
      "PKG_TAR_BAD_HEADER",
    );
  });

  test("entries larger than maxEntryBytes", () => {
    const bytes = writeTar([{ path: "big", data: new Uint8Array(2048) }]);
    expect(readTar(bytes, { file: "ok.tar", maxEntryBytes: 2048 })).toHaveLength(1);
    rejects(bytes, "PKG_TAR_TOO_LARGE", { maxEntryBytes: 2047 });
  });

  test("more than maxEntries entries", () => {
    const bytes = writeTar(["a", "b", "c"].map((path) => ({ path, data: text(path) })));
    expect(readTar(bytes, { file: "ok.tar", maxEntries: 3 })).toHaveLength(3);
    rejects(bytes, "PKG_TAR_TOO_MANY_ENTRIES", { maxEntries: 2 });
  });

  test("truncated archives", () => {
    const whole = writeTar([{ path: "a", data: new Uint8Array(1500).fill(9) }]);
    rejects(new Uint8Array(0), "PKG_TAR_TRUNCATED");
    rejects(whole.subarray(0, 512 + 700), "PKG_TAR_TRUNCATED"); // inside the data
    rejects(whole.subarray(0, 512 + 1536), "PKG_TAR_TRUNCATED"); // no end marker
    rejects(whole.subarray(0, 512 + 1536 + 512), "PKG_TAR_TRUNCATED"); // a lone zero block
    rejects(whole.subarray(0, 300), "PKG_TAR_TRUNCATED"); // partial header
  });

  test("trailing data after the end marker (zero padding is fine)", () => {
    const whole = writeTar([{ path: "a", data: text("x") }]);
    expect(readTar(concat([whole, new Uint8Array(512 * 16)]), { file: "padded.tar" })).toHaveLength(1);
    rejects(concat([whole, text("garbage")]), "PKG_TAR_TRAILING_DATA");
    rejects(concat([whole, new Uint8Array(100)]), "PKG_TAR_TRAILING_DATA");
    // an entry hidden after the end marker is not silently dropped
    rejects(concat([whole, writeTar([{ path: "hidden", data: text("x") }])]), "PKG_TAR_TRAILING_DATA");
  });

  test("permission bits only: setuid/setgid/sticky are dropped", () => {
    const got = readTar(rawTar([fileEntry("s", "x", { mode: "0006755\0" })]), { file: "t" });
    expect(got[0]!.mode).toBe(0o755);
  });
});
