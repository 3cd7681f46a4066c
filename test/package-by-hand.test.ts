/**
 * docs/package-format.md promises that a package can be built and checked
 * with bash, coreutils, OpenSSL and GNU tar alone. This suite runs the
 * documented shell blocks verbatim, so the document cannot drift from what
 * the agent accepts, and checks the reverse interop: OpenSSL accepts what
 * packDirectory signs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrustStore } from "../core/crypto/cms.ts";
import { initKeys, KEY_FILES, loadSigningKeys } from "../core/crypto/keys.ts";
import { openPackage } from "../core/package/open.ts";
import { packDirectory } from "../core/package/pack.ts";
import { readTar, writeTar } from "../core/package/tar.ts";

const DOC = join(import.meta.dir, "..", "docs", "package-format.md");

/** The body of the fenced block whose info string is "sh <name>". */
function docBlock(name: string): string {
  const doc = readFileSync(DOC, "utf8");
  const blocks = [...doc.matchAll(/^```sh ([\w-]+)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === name);
  if (blocks.length !== 1)
    throw new Error(`${DOC}: expected exactly one \`\`\`sh ${name} block, found ${blocks.length}`);
  return blocks[0]![2]!;
}

function bash(script: string, cwd: string, env: Record<string, string>): { code: number; out: string } {
  const r = Bun.spawnSync(["bash", "-c", script], {
    cwd,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: r.exitCode ?? -1, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

const root = mkdtempSync(join(tmpdir(), "outpost-by-hand-"));
const keysDir = join(root, "keys");
const otherKeysDir = join(root, "other-keys");
let trust: TrustStore;
let n = 0;
const scratch = () => {
  const d = join(root, `w${n++}`);
  mkdirSync(d);
  return d;
};

// Names that exercise the recipe: nesting, a space, UTF-8, an empty file, byte-order sorting, and a
// path over 100 bytes that needs the ustar prefix field.
const LONG = `deep/${"d".repeat(70)}/${"f".repeat(60)}.txt`;
const PAYLOAD: Record<string, string> = {
  "B.json": '{"upper":true}\n',
  "a.txt": "alpha\n",
  "sub/with space.txt": "spaced",
  "sub/é.txt": "accent",
  empty: "",
  [LONG]: "long path",
};

function writePayload(dir: string): void {
  for (const [path, content] of Object.entries(PAYLOAD)) {
    mkdirSync(join(dir, "payload", path, ".."), { recursive: true });
    writeFileSync(join(dir, "payload", path), content);
  }
}

beforeAll(async () => {
  // Real time: openssl stamps signingTime with the current clock.
  await initKeys(keysDir);
  await initKeys(otherKeysDir, { name: "Impostor" });
  trust = await TrustStore.load(join(keysDir, KEY_FILES.rootCert));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const hasJq = Bun.which("jq") !== null;

describe("docs/package-format.md by-hand recipe", () => {
  test("builds a package that openPackage accepts", async () => {
    const dir = scratch();
    writePayload(dir);
    const r = bash(docBlock("by-hand"), dir, { KEYS: keysDir, TYPE: "Demo_data", VERSION: "12" });
    expect(r.out).toBe("");
    expect(r.code).toBe(0);

    const bytes = new Uint8Array(readFileSync(join(dir, "pkg.tar")));
    const pkg = await openPackage(bytes, trust, {
      file: "pkg.tar",
      now: new Date(),
      expectedType: "Demo_data",
    });
    expect(pkg.manifest.version).toBe(12);
    expect(pkg.signer.signerSubject).toContain("Content Signer");
    expect(Math.abs(pkg.signingTime.getTime() - Date.now())).toBeLessThan(10 * 60 * 1000);
    expect(Object.fromEntries([...pkg.files].map(([p, d]) => [p, new TextDecoder().decode(d)]))).toEqual(
      PAYLOAD,
    );
    // the GNU tar output has directory entries, which the agent accepts
    expect(readTar(bytes, { file: "pkg.tar" }).some((e) => e.type === "directory")).toBe(true);
  });

  test("refuses a payload holding a symlink", () => {
    const dir = scratch();
    writePayload(dir);
    symlinkSync("/etc/passwd", join(dir, "payload", "link"));
    const r = bash(docBlock("by-hand"), dir, { KEYS: keysDir, TYPE: "Demo_data", VERSION: "1" });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("links or special files");
  });

  test("a package signed by a key outside the trust store is rejected by the agent", async () => {
    const dir = scratch();
    writePayload(dir);
    expect(bash(docBlock("by-hand"), dir, { KEYS: otherKeysDir, TYPE: "Demo_data", VERSION: "1" }).code).toBe(
      0,
    );
    const bytes = new Uint8Array(readFileSync(join(dir, "pkg.tar")));
    const err = await openPackage(bytes, trust, { file: "pkg.tar", now: new Date() }).catch(
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe("SIG_UNTRUSTED_CHAIN");
  });
});

describe("docs/package-format.md verification commands", () => {
  async function packed(): Promise<string> {
    const dir = scratch();
    writePayload(dir);
    const keys = await loadSigningKeys(keysDir);
    const file = join(dir, "packed.tar");
    writeFileSync(
      file,
      await packDirectory({ type: "Demo_data", version: 3, keys, dir: join(dir, "payload") }),
    );
    return file;
  }

  test("openssl cms -verify accepts the manifest.p7s packDirectory writes", async () => {
    const file = await packed();
    const dir = scratch();
    const entries = readTar(new Uint8Array(readFileSync(file)), { file });
    writeFileSync(join(dir, "manifest.json"), entries[0]!.data);
    writeFileSync(join(dir, "manifest.p7s"), entries[1]!.data);
    const r = Bun.spawnSync(
      [
        "openssl",
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "manifest.p7s",
        "-content",
        "manifest.json",
      ].concat(["-CAfile", join(keysDir, KEY_FILES.rootCert), "-purpose", "any", "-out", "/dev/null"]),
      { cwd: dir, stderr: "pipe" },
    );
    expect(r.stderr.toString()).toContain("Verification successful");
    expect(r.exitCode).toBe(0);
    // and refuses it against another root
    const other = Bun.spawnSync(
      [
        "openssl",
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "manifest.p7s",
        "-content",
        "manifest.json",
      ].concat(["-CAfile", join(otherKeysDir, KEY_FILES.rootCert), "-purpose", "any", "-out", "/dev/null"]),
      { cwd: dir, stderr: "pipe" },
    );
    expect(other.exitCode).not.toBe(0);
  });

  test("the verify-signature block accepts packDirectory and by-hand packages, with signingTime shown", async () => {
    const hand = scratch();
    writePayload(hand);
    expect(bash(docBlock("by-hand"), hand, { KEYS: keysDir, TYPE: "Demo_data", VERSION: "2" }).code).toBe(0);
    for (const pkg of [await packed(), join(hand, "pkg.tar")]) {
      const r = bash(docBlock("verify-signature"), scratch(), { PKG: pkg, KEYS: keysDir });
      expect(r.out).toContain("Verification successful");
      expect(r.out).toContain("UTCTIME");
      expect(r.code).toBe(0);
    }
  });

  test("the verify-signature block refuses a package from an untrusted signer", async () => {
    const dir = scratch();
    writePayload(dir);
    expect(bash(docBlock("by-hand"), dir, { KEYS: otherKeysDir, TYPE: "Demo_data", VERSION: "1" }).code).toBe(
      0,
    );
    const r = bash(docBlock("verify-signature"), scratch(), { PKG: join(dir, "pkg.tar"), KEYS: keysDir });
    expect(r.code).not.toBe(0);
  });

  test.skipIf(!hasJq)(
    "the verify-payload block accepts a good package and refuses tampered ones",
    async () => {
      const file = await packed();
      expect(bash(docBlock("verify-payload"), scratch(), { PKG: file }).code).toBe(0);

      const entries = readTar(new Uint8Array(readFileSync(file)), { file });
      const rewrite = (edit: (e: typeof entries) => typeof entries) => {
        const out = join(scratch(), "t.tar");
        writeFileSync(out, writeTar(edit(entries).map((e) => ({ path: e.path, data: e.data }))));
        return out;
      };
      const changed = rewrite((es) =>
        es.map((e) => (e.path === "payload/a.txt" ? { ...e, data: new TextEncoder().encode("ALPHA\n") } : e)),
      );
      expect(bash(docBlock("verify-payload"), scratch(), { PKG: changed }).code).not.toBe(0);
      const extra = rewrite((es) => [
        ...es,
        { path: "payload/zz", data: new TextEncoder().encode("x"), mode: 0o644, type: "file" },
      ]);
      expect(bash(docBlock("verify-payload"), scratch(), { PKG: extra }).code).not.toBe(0);
    },
  );
});
