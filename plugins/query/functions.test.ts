/**
 * osquery's SQL functions on the embedded engine, checked against real
 * tools where one exists (md5sum/sha1sum/sha256sum, base64, dpkg
 * --compare-versions) and against the Community ID spec's own examples.
 */
import { describe, expect, test } from "bun:test";
import { EmbeddedEngine, planQuery } from "./embedded.ts";
import { communityIdV1, dpkgCompare, inCidrBlock, rpmvercmp, split, versionCompare } from "./functions.ts";

const engine = new EmbeddedEngine();
const one = (sql: string) => {
  const r = engine.querySync(sql);
  return r.rows[0]![r.columns[0]!];
};
const tool = (cmd: string[], stdin?: string) =>
  Bun.spawnSync(cmd, {
    stdin: stdin === undefined ? "ignore" : Buffer.from(stdin),
    stdout: "pipe",
  }).stdout.toString();

describe("string functions", () => {
  test("split: any token character separates, empty pieces dropped, NULL past the end", () => {
    expect(one("select split('a,,b;c', ',;', 1)")).toBe("b");
    expect(one("select split('a,,b;c', ',;', 2)")).toBe("c");
    expect(one("select split('a', ',', 3) is null")).toBe("1");
    expect(split("x", "", 0)).toBeNull();
  });

  test("regex_split and regex_match", () => {
    expect(one("select regex_split('a1b22c', '[0-9]+', 2)")).toBe("c");
    expect(one("select regex_match('user=alice uid=1000', 'uid=([0-9]+)', 1)")).toBe("1000");
    expect(one("select regex_match('abc', 'x', 0) is null")).toBe("1");
    expect(one("select regex_match('abc', '(', 0) is null")).toBe("1");
  });

  test("base64 functions agree with base64(1)", () => {
    const s = "héllo\u0001world";
    expect(one(`select to_base64('${s}')`)).toBe(tool(["base64", "-w0"], s));
    expect(one("select from_base64('aGVsbG8=')")).toBe("hello");
    expect(one("select from_base64('not base64!') is null")).toBe("1");
    expect(one("select conditional_to_base64('plain text')")).toBe("plain text");
    expect(one(`select conditional_to_base64('${s}')`)).toBe(tool(["base64", "-w0"], s));
  });

  test("md5, sha1, sha256 agree with coreutils", () => {
    for (const algo of ["md5", "sha1", "sha256"]) {
      expect(one(`select ${algo}('osquery')`)).toBe(tool([`${algo}sum`], "osquery").split(" ")[0]!);
    }
  });

  test("parent_directory", () => {
    expect(one("select parent_directory('/usr/bin/ls')")).toBe("/usr/bin");
    expect(one("select parent_directory('/etc/')")).toBe("/");
    expect(one("select parent_directory('ls')")).toBe("");
  });
});

describe("network functions", () => {
  test("inet_aton and in_cidr_block (IPv4 and IPv6)", () => {
    expect(one("select inet_aton('10.0.0.1')")).toBe(String(10 * 2 ** 24 + 1));
    expect(one("select inet_aton('10.0.0') is null")).toBe("1");
    expect(inCidrBlock("10.0.0.0/8", "10.200.1.1")).toBe(1);
    expect(inCidrBlock("10.0.0.0/8", "11.0.0.1")).toBe(0);
    expect(inCidrBlock("2001:db8::/32", "2001:db8:1::5")).toBe(1);
    expect(inCidrBlock("2001:db8::/32", "2001:db9::5")).toBe(0);
    expect(inCidrBlock("10.0.0.0/8", "2001:db8::1")).toBe(0);
    expect(inCidrBlock("10.0.0.0/33", "10.0.0.1")).toBeNull();
    expect(
      one("select count(*) from (select '192.168.1.7' as ip) where in_cidr_block('192.168.0.0/16', ip)"),
    ).toBe("1");
  });

  test("community_id_v1 reproduces the spec's examples and is direction-independent", () => {
    // https://github.com/corelight/community-id-spec (baseline examples).
    expect(communityIdV1("128.232.110.120", "66.35.250.204", 34855, 80, 6)).toBe(
      "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    );
    expect(communityIdV1("66.35.250.204", "128.232.110.120", 80, 34855, 6)).toBe(
      "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    );
    expect(one("select community_id_v1('128.232.110.120', '66.35.250.204', 34855, 80, 6)")).toBe(
      "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    );
    expect(communityIdV1("128.232.110.120", "66.35.250.204", 34855, 80, 6, 1)).not.toBe(
      "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
    );
    expect(communityIdV1("bad", "1.2.3.4", 1, 2, 6)).toBeNull();
  });
});

describe("version_compare", () => {
  test("DPKG ordering agrees with dpkg --compare-versions", () => {
    const pairs = [
      ["1.0", "1.0-1"],
      ["1.0~rc1", "1.0"],
      ["2:1.0", "1:9.9"],
      ["1.2.10", "1.2.9"],
      ["1.0a", "1.0+b"],
      ["7.88.1-10+deb12u5", "7.88.1-10+deb12u12"],
    ];
    for (const [a, b] of pairs) {
      const lt = Bun.spawnSync(["dpkg", "--compare-versions", a!, "lt", b!]).exitCode === 0;
      const eq = Bun.spawnSync(["dpkg", "--compare-versions", a!, "eq", b!]).exitCode === 0;
      expect(`${a} ${b} ${Math.sign(dpkgCompare(a!, b!))}`).toBe(`${a} ${b} ${lt ? -1 : eq ? 0 : 1}`);
      expect(one(`select version_compare('${a}', '${b}', 'DPKG')`)).toBe(String(lt ? -1 : eq ? 0 : 1));
    }
  });

  test("RHEL (rpmvercmp) and plain dotted versions", () => {
    expect(Math.sign(rpmvercmp("1.0~rc1", "1.0"))).toBe(-1);
    expect(Math.sign(rpmvercmp("1.10", "1.9"))).toBe(1);
    expect(Math.sign(rpmvercmp("1.0a", "1.0"))).toBe(1);
    expect(rpmvercmp("2.0", "2.0")).toBe(0);
    expect(versionCompare("5.12.0", "5.9.1")).toBe(1);
    expect(versionCompare("1.0", "1.0.0")).toBe(0);
    expect(one("select version_compare('1.2', '1.10')")).toBe("-1");
    expect(one("select version_compare('1', '2', 'NOPE') is null")).toBe("1");
  });
});

describe("unknown functions", () => {
  test("are a distinct error at plan time, naming the function", () => {
    expect(() => planQuery("select carve(path) from file where path = '/x'")).toThrow(
      expect.objectContaining({ code: "HND_QUERY_UNKNOWN_FUNCTION", message: "no such function: carve" }),
    );
    expect(() => planQuery("select split('a', 'b', 0)")).not.toThrow();
  });
});
