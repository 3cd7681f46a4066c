import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../../crypto/digest.ts";
import { x509 } from "../../crypto/engine.ts";
import { KEY_FILES } from "../../crypto/keys.ts";

const repo = join(import.meta.dir, "..", "..", "..");
const base = mkdtempSync(join(tmpdir(), "outpost-contentctl-keys-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function contentctl(...args: string[]) {
  const r = Bun.spawnSync([process.execPath, join(repo, "bin", "contentctl.ts"), ...args], {
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function certSha256(path: string): string {
  return sha256Hex(new Uint8Array(new x509.X509Certificate(readFileSync(path, "utf8")).rawData));
}

describe("contentctl keys init", () => {
  test("--json lists every file with certificate fingerprints", () => {
    const dir = join(base, "json");
    const r = contentctl("keys", "init", "--dir", dir, "--json", "--signer-days", "30", "--name", "Acme");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      dir: string;
      files: { name: string; kind: string; sha256?: string }[];
    };
    expect(out.dir).toBe(dir);
    expect(out.files.map((f) => f.name).sort()).toEqual(Object.values(KEY_FILES).sort());
    for (const f of out.files) {
      if (f.kind === "certificate") expect(f.sha256).toBe(certSha256(join(dir, f.name)));
      else expect(statSync(join(dir, f.name)).mode & 0o777).toBe(0o600);
    }
    const signer = new x509.X509Certificate(readFileSync(join(dir, KEY_FILES.signerCert), "utf8"));
    expect(signer.subject).toBe("CN=Acme Content Signer, O=Acme");
    expect(Math.round((signer.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(30);
  });

  test("human output is a table with the root fingerprint; a second init is refused, --force replaces", () => {
    const dir = join(base, "human");
    const first = contentctl("keys", "init", "--dir", dir);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(certSha256(join(dir, KEY_FILES.rootCert)));
    expect(first.stdout).toContain("SHA-256");

    const again = contentctl("keys", "init", "--dir", dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("CFG_KEYS_EXIST");

    const before = certSha256(join(dir, KEY_FILES.rootCert));
    const forced = contentctl("keys", "init", "--dir", dir, "--force");
    expect(forced.code).toBe(0);
    expect(certSha256(join(dir, KEY_FILES.rootCert))).not.toBe(before);
  });

  test("a bad --signer-days is a usage error", () => {
    const r = contentctl("keys", "init", "--dir", join(base, "bad"), "--signer-days", "ten", "--json");
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe("CFG_INVALID_ARGUMENT");
  });
});
