/**
 * The contract as a vendor and an administrator run it, as processes:
 * `contentctl pack` of examples/EPIPS_data and examples/NTP_OVERRIDES,
 * `contentctl publish`, `agent update --once`, then `agent content list
 * --json` shows both "loaded" and `agent ips status` shows the IPS off by
 * default. A rule with an unsupported keyword is refused at pack time with
 * its sid and line.
 */
import { expect, test } from "bun:test";
import "reflect-metadata";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initKeys } from "../../core/crypto/keys.ts";

const ROOT = join(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "outpost-ips-contract-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const bin =
  (name: "agent" | "contentctl") =>
  (...args: string[]) => {
    const r = Bun.spawnSync([process.execPath, join(ROOT, "bin", `${name}.ts`), ...args], {
      cwd: dir,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
    });
    return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };
const contentctl = bin("contentctl");
const agent = bin("agent");

test("examples pack, publish and install; both types load; the IPS stays off by default", async () => {
  await initKeys(join(dir, "keys"));
  for (const type of ["EPIPS_data", "NTP_OVERRIDES"]) {
    const out = join(dir, `${type}-1.tar`);
    const pack = contentctl(
      "pack",
      "--type",
      type,
      "--version",
      "1",
      "--keys",
      "keys",
      "--out",
      out,
      join(ROOT, "examples", type),
      "--json",
    );
    expect(pack.code).toBe(0);
    const pub = contentctl("publish", out, "--repo", "repo", "--group", "stable", "--keys", "keys", "--json");
    expect(pub.code).toBe(0);
  }
  const state = join(dir, "state");
  const up = agent(
    "update",
    "--once",
    "--repo",
    "repo",
    "--group",
    "stable",
    "--state",
    state,
    "--trust",
    "keys/root.pem",
    "--json",
  );
  expect(up.code).toBe(0);
  const list = JSON.parse(agent("content", "list", "--state", state, "--json").out) as {
    type: string;
    version: number;
    handlerState: string;
    handlerStatus?: Record<string, unknown>;
  }[];
  const epips = list.find((c) => c.type === "EPIPS_data");
  expect(epips).toMatchObject({ version: 1, handlerState: "loaded" });
  // sid 2200002's only content is one byte: no anchor, checked on every UDP/53 packet (status says so).
  expect(epips?.handlerStatus).toMatchObject({ rules: 7, unanchored: 1 });
  expect(list.find((c) => c.type === "NTP_OVERRIDES")).toMatchObject({ version: 1, handlerState: "loaded" });
  const ips = JSON.parse(agent("ips", "status", "--state", state, "--json").out);
  expect(ips).toMatchObject({ running: false, configEnabled: false, admin: null, safety: null });
}, 120_000);

test("a rule with an unsupported keyword is refused at pack time, naming file, line and sid", () => {
  const src = join(dir, "bad-rules");
  mkdirSync(src, { recursive: true });
  writeFileSync(
    join(src, "bad.rules"),
    '# header\nalert tcp any any -> any 80 (content:"a"; sid:1;)\nalert tcp any any -> any 80 (content:"b"; byte_jump:4,0; sid:77;)\n',
  );
  const r = contentctl(
    "pack",
    "--type",
    "EPIPS_data",
    "--version",
    "2",
    "--keys",
    "keys",
    "--out",
    "x.tar",
    src,
    "--json",
  );
  expect(r.code).not.toBe(0);
  const err = JSON.parse(r.out).error;
  expect(err.code).toBe("HND_EPIPS_INVALID");
  expect(err.message).toContain("bad.rules:3: sid 77: keyword 'byte_jump' is not supported");
  const o = join(dir, "bad-ovr");
  mkdirSync(o, { recursive: true });
  writeFileSync(join(o, "overrides.json"), '{"entries":[{"module":"x y","reason":"r"}]}');
  const r2 = contentctl(
    "pack",
    "--type",
    "NTP_OVERRIDES",
    "--version",
    "2",
    "--keys",
    "keys",
    "--out",
    "y.tar",
    o,
    "--json",
  );
  expect(JSON.parse(r2.out).error.code).toBe("HND_NTP_OVERRIDES_INVALID");
}, 60_000);
