import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  machineShard,
  OSQUERY_COMPAT_VERSION,
  parsePack,
  parsePayload,
  platformMatches,
  selectForHost,
  versionAtLeast,
} from "./pack.ts";

const FIXTURES = join(import.meta.dir, "testdata", "osquery-packs");
const host = { platform: "linux" as const, osqueryVersion: OSQUERY_COMPAT_VERSION, shard: 50 };

function fixture(name: string) {
  return parsePack(name, `packs/${name}.conf`, readFileSync(join(FIXTURES, `${name}.conf`), "utf8"));
}

describe("real osquery packs load as they are", () => {
  test.each(readdirSync(FIXTURES).filter((f) => f.endsWith(".conf")))("%s", (file) => {
    const name = file.replace(/\.conf$/, "");
    const pack = fixture(name);
    const text = readFileSync(join(FIXTURES, file), "utf8");
    expect(pack.queries.length + pack.invalid.length).toBe(Object.keys(JSON.parse(text).queries).length);
    expect(pack.invalid).toEqual([]);
  });

  test("incident-response: string intervals, darwin queries skipped for this host", () => {
    const pack = fixture("incident-response");
    const crontab = pack.queries.find((q) => q.name === "crontab")!;
    expect(crontab).toMatchObject({
      interval: 3600,
      snapshot: false,
      removed: true,
      denylist: true,
      logName: "pack_incident-response_crontab",
    });
    const sel = selectForHost(pack, host);
    expect(sel.skipped.find((s) => s.name === "launchd")?.reason).toBe(
      "platform darwin (this host is linux)",
    );
    expect(sel.scheduled.map((q) => q.name)).toContain("kernel_modules");
  });

  test("ossec-rootkit: a pack-level platform", () => {
    const pack = fixture("ossec-rootkit");
    expect(pack.platform).toBe("linux");
    expect(selectForHost(pack, host).scheduled.length).toBe(pack.queries.length);
    expect(selectForHost(pack, { ...host }).excluded).toBeUndefined();
  });

  test("osquery-monitoring: removed and denylist options", () => {
    const q = fixture("osquery-monitoring").queries.find((x) => x.name === "schedule")!;
    expect(q).toMatchObject({ interval: 7200, removed: false, denylist: false });
  });

  test("the payload reader takes packs/<name>.conf and .json", () => {
    const files: Record<string, string> = {
      "packs/a.conf": '{"queries": {"x": {"query": "select 1", "interval": 60}}}',
      "packs/b.json": '{"queries": {}}',
      "README.md": "not a pack",
    };
    const packs = parsePayload(Object.keys(files), (p) => files[p]!);
    expect(packs.map((p) => p.name)).toEqual(["a", "b"]);
  });
});

describe("osquery's rules", () => {
  const one = (q: Record<string, unknown>, pack: Record<string, unknown> = {}) =>
    parsePack("p", "packs/p.conf", JSON.stringify({ ...pack, queries: { q } }));

  test("interval default, bounds and numeric strings", () => {
    expect(one({ query: "select 1" }).queries[0]!.interval).toBe(3600);
    expect(one({ query: "select 1", interval: "60" }).queries[0]!.interval).toBe(60);
    expect(one({ query: "select 1", interval: 0 }).invalid[0]!.reason).toContain("invalid interval");
    expect(one({ query: "select 1", interval: 604801 }).invalid[0]!.reason).toContain("invalid interval");
    expect(one({ interval: 10 }).invalid[0]!.reason).toBe("no query string");
  });

  test("booleans as osquery reads them; blacklist is the old name of denylist", () => {
    const q = one({ query: "select 1", snapshot: "true", removed: 0, blacklist: false }).queries[0]!;
    expect(q).toMatchObject({ snapshot: true, removed: false, denylist: false });
  });

  test("platform strings", () => {
    expect(platformMatches(undefined)).toBe(true);
    expect(platformMatches("posix")).toBe(true);
    expect(platformMatches("linux,darwin")).toBe(true);
    expect(platformMatches("ubuntu")).toBe(true);
    expect(platformMatches("darwin")).toBe(false);
    expect(platformMatches("windows")).toBe(false);
  });

  test("version requirements", () => {
    expect(versionAtLeast("1.4.5", "5.12.0")).toBe(true);
    expect(versionAtLeast("5.12.0", "5.12.0")).toBe(true);
    expect(versionAtLeast("5.13", "5.12.0")).toBe(false);
    const sel = selectForHost(one({ query: "select 1", version: "99.0.0" }), host);
    expect(sel.skipped[0]!.reason).toContain("needs osquery 99.0.0");
  });

  test("sharding follows osquery's getMachineShard", () => {
    // The shard is the first byte of SHA-1(host identifier) scaled to 0–100.
    const shard = machineShard("osquery-host");
    const hex = new Bun.CryptoHasher("sha1").update("osquery-host").digest("hex");
    expect(shard).toBe(Math.floor((Number.parseInt(hex.slice(0, 2), 16) * 100) / 255));
    const pack = one({ query: "select 1", shard: 10 });
    expect(selectForHost(pack, { ...host, shard: 5 }).scheduled).toHaveLength(1);
    expect(selectForHost(pack, { ...host, shard: 50 }).skipped[0]!.reason).toContain("shard 10 excludes");
    expect(
      selectForHost(one({ query: "select 1" }, { shard: 10 }), { ...host, shard: 50 }).excluded,
    ).toContain("shard");
  });

  test("discovery queries and watchdog overrides", () => {
    const pack = one(
      { query: "select 1", watchdog: { wallSeconds: 5 } },
      {
        discovery: ["select pid from processes where name = 'sshd'"],
        watchdog: { memoryMb: 50, wallSeconds: 10 },
      },
    );
    expect(pack.discovery).toEqual(["select pid from processes where name = 'sshd'"]);
    expect(pack.queries[0]!.watchdog).toEqual({ memoryMb: 50, wallSeconds: 5 });
  });

  test("only a file that is not a pack is fatal", () => {
    const bad = (text: string) => () => parsePack("p", "packs/p.conf", text);
    expect(bad("{not json")).toThrow("packs/p.conf: not valid JSON");
    expect(bad("[]")).toThrow("a pack must be a JSON object");
    expect(bad('{"queries": []}')).toThrow("`queries` must be an object");
    expect(bad('{"queries": {"q": {"query": "select 1", "watchdog": {"memoryMb": 0}}}}')).toThrow(
      "watchdog.memoryMb",
    );
    expect(() => parsePayload(["packs/bad name.conf"], () => "{}")).toThrow("pack files are packs/<name>");
    expect(() => parsePayload(["other.txt"], () => "")).toThrow("no packs/<name>.conf");
  });

  test("osquery config comments are ignored", () => {
    const pack = parsePack(
      "p",
      "packs/p.conf",
      '// a comment\n{\n  # another\n  "queries": {"q": {"query": "select 1"}}\n}',
    );
    expect(pack.queries).toHaveLength(1);
  });
});
