/**
 * Issue 12 item 16 — the validator is the agent's code. Each signing or
 * releasing command, run as an operator runs it (`bun bin/contentctl.ts`,
 * the built-in handlers), refuses content the agent would reject, with the
 * handler's error code, and leaves nothing signed or published behind:
 *
 *  - `pack --type Hmpa_data` of 400 random bytes (main signed it);
 *  - `rules pack` of a Behavior rule the agent's Lua sandbox cannot compile;
 *  - `release start` of validly signed but corrupt content: refused before
 *    any release group sees it (no release, repository untouched).
 * Positive controls: the same commands accept the project's examples.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../core/crypto/digest.ts";
import { makeVendor, type Vendor } from "./fixtures/vendor.ts";

const ROOT = join(import.meta.dir, "..");
let vendor: Vendor;
let dir: string;

async function contentctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return contentctlWith([], args);
}

/** contentctl behind `prefix` (e.g. a shell that sets the umask first). */
async function contentctlWith(
  prefix: string[],
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([...prefix, process.execPath, join(ROOT, "bin", "contentctl.ts"), ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1", NO_COLOR: "1" },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}

/** `contentctl rules pack SRC` as Behavior content, signed with the vendor's keys, to `out`. */
function rulesPackArgs(src: string, version: string, out: string): string[] {
  return [
    "rules",
    "pack",
    src,
    "--type",
    "Behavior",
    "--version",
    version,
    "--keys",
    vendor.keysDir,
    "--key",
    join(dir, "ck.json"),
    "--out",
    out,
  ];
}

/** Every file under `d` with its digest, to prove nothing changed. */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    for (const name of readdirSync(p)) {
      const full = join(p, name);
      if (statSync(full).isDirectory()) walk(full);
      else out[full] = sha256Hex(readFileSync(full));
    }
  };
  if (existsSync(d)) walk(d);
  return out;
}

beforeAll(async () => {
  vendor = await makeVendor();
  dir = mkdtempSync(join(tmpdir(), "outpost-validate-cli-"));
  await contentctl("rules", "keygen", "--out", join(dir, "ck.json"), "--id", "t1");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  vendor?.cleanup();
});

describe("contentctl refuses what the agent would reject", () => {
  test("pack --type Hmpa_data of 400 random bytes: HND_HMPA_INVALID, nothing written", async () => {
    const src = join(dir, "random");
    mkdirSync(src);
    writeFileSync(join(src, "allowlist.bin"), crypto.getRandomValues(new Uint8Array(400)));
    const out = join(dir, "Hmpa_data-1.opkg");
    const r = await contentctl(
      "pack",
      "--type",
      "Hmpa_data",
      "--version",
      "1",
      "--keys",
      vendor.keysDir,
      "--out",
      out,
      src,
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("HND_HMPA_INVALID");
    expect(r.stderr).toContain("would be rejected by the agent");
    expect(existsSync(out)).toBe(false);
    // Positive control: a real allowlist is validated in the hmpa host and signed.
    const good = join(dir, "good");
    mkdirSync(good);
    const built = await contentctl(
      "hmpa-build",
      "--in",
      join(ROOT, "examples/Hmpa_data/thumbprints.txt"),
      "--out",
      join(good, "allowlist.bin"),
    );
    expect(built.code).toBe(0);
    const ok = await contentctl(
      "pack",
      "--type",
      "Hmpa_data",
      "--version",
      "1",
      "--keys",
      vendor.keysDir,
      "--out",
      out,
      good,
      "--json",
    );
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ type: "Hmpa_data", validated: { group: "hmpa" } });
  }, 60_000);

  test("rules pack of a rule the agent rejects: HND_RULE_SYNTAX, nothing written", async () => {
    const src = join(dir, "rules-bad");
    mkdirSync(src);
    copyFileSync(join(ROOT, "examples/Behavior/rules.json"), join(src, "rules.json"));
    writeFileSync(
      join(src, "BAD-1.lua"),
      'rule { id = "BAD-1", on = "process", run = function(e) return end\n',
    );
    const out = join(dir, "Behavior-9.opkg");
    const r = await contentctl(...rulesPackArgs(src, "9", out));
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("HND_RULE_SYNTAX");
    expect(existsSync(out)).toBe(false);
    // Positive control: the example rules pass the same check.
    const ok = await contentctl(...rulesPackArgs(join(ROOT, "examples/Behavior"), "9", out));
    expect(ok.code).toBe(0);
    expect(existsSync(out)).toBe(true);
  }, 60_000);

  test("rules pack run with umask 077: the validating host, not root, still reads its keyring", async () => {
    // An operator's hardened umask took the group's read bit off the keyring placed for the host
    // (root-owned, 0640 to the agent user's group): EACCES, HND_RULES_KEYRING_INVALID.
    const out = join(dir, "Behavior-10.opkg");
    const r = await contentctlWith(
      ["/bin/sh", "-c", 'umask 077; exec "$@"', "sh"],
      rulesPackArgs(join(ROOT, "examples/Behavior"), "10", out),
    );
    expect(r.stderr).not.toContain("EACCES");
    expect(r.code).toBe(0);
    expect(existsSync(out)).toBe(true);
  }, 60_000);

  test("release start of corrupt (validly signed) content is refused before any group sees it", async () => {
    const pkgDir = join(dir, "packages");
    mkdirSync(pkgDir, { recursive: true });
    // Signed by a pipeline that skipped contentctl (the library call): the signature is fine, the content is not.
    const bytes = await vendor.pack("Hmpa_data", 1, {
      "allowlist.bin": crypto.getRandomValues(new Uint8Array(400)),
    });
    const file = join(pkgDir, "Hmpa_data-1.tar");
    writeFileSync(file, bytes);
    const cfg = join(dir, "release.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        repo: vendor.repo,
        keys: vendor.keysDir,
        stateDir: "release-state",
        groups: [
          { name: "eng-test", promote: "manual", soakMinutes: 60 },
          { name: "public-1", promote: "auto", soakMinutes: 60 },
        ],
      }),
    );
    const before = snapshot(vendor.repo);
    const r = await contentctl("release", "start", "Hmpa_data", "1", "--package", file, "--config", cfg);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("HND_HMPA_INVALID");
    expect(snapshot(vendor.repo)).toEqual(before);
    // Not even release state was created: status finds none, and says so (it is not "no releases").
    const status = await contentctl("release", "status", "--config", cfg, "--json");
    expect(status.code).toBe(3);
    expect(status.stdout + status.stderr).toContain("REL_STATE_MISSING");
  }, 60_000);
});
