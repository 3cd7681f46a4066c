import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ArgsDef, type CommandDef, runCommand } from "citty";
import publish from "../core/cli/contentctl/publish.ts";
import resign from "../core/cli/contentctl/resign.ts";
import { verifyDetached } from "../core/crypto/cms-verify.ts";
import { ConfigError } from "../core/errors.ts";
import { INDEX_PATH, INDEX_SIG_PATH, type RepoIndex } from "../core/repo/index-format.ts";
import { captureStdio } from "../core/stdio.ts";
import { makePackage, makeSigner, type TestSigner } from "../core/store/testkit.ts";
import serve from "../fleet/contentctl/serve.ts";

let base: string;
let signer: TestSigner;
let repo: string;
let pkgFile: string;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), "outpost-contentctl-repo-"));
  // The commands sign with the real clock, so the keys must be valid now.
  signer = await makeSigner(base, new Date());
  repo = join(base, "repo");
  pkgFile = join(base, "alpha-1.tar");
}, 30_000);

afterAll(() => rmSync(base, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = 0;
});

/** Runs a command, capturing stdout; resolves with what it printed and returned. */
async function run<T extends ArgsDef>(
  cmd: CommandDef<T>,
  rawArgs: string[],
): Promise<{ out: string; result: unknown }> {
  const { result, stdout } = await captureStdio(() => runCommand(cmd, { rawArgs }));
  return { out: stdout, result: result.result };
}

describe("contentctl publish / resign / serve", () => {
  test("publish --json prints the signed index; resign bumps its serial", async () => {
    const p = await makePackage(signer, "Alpha_data", 1, { "a.txt": "a\n" }, new Date());
    writeFileSync(pkgFile, p.bytes);
    const printed = JSON.parse(
      (await run(publish, ["--repo", repo, "--group", "stable", "--keys", signer.keysDir, "--json", pkgFile]))
        .out,
    ) as RepoIndex;
    expect(printed.serial).toBe(1);
    expect(printed.content.Alpha_data?.sha384).toBe(p.sha384);
    const json = new Uint8Array(readFileSync(join(repo, INDEX_PATH("stable"))));
    const p7s = new Uint8Array(readFileSync(join(repo, INDEX_SIG_PATH("stable"))));
    await verifyDetached(json, p7s, signer.trust, { now: new Date(), file: "index.json" });
    expect(JSON.parse(new TextDecoder().decode(json))).toEqual(printed);

    const re = await run(resign, [
      "--repo",
      repo,
      "--group",
      "stable",
      "--keys",
      signer.keysDir,
      "--expires-days",
      "3",
    ]);
    expect(re.out).toContain("serial 2");
    const idx = re.result as RepoIndex;
    expect(Date.parse(idx.expires) - Date.parse(idx.issued)).toBe(3 * 86_400_000);
    await expect(
      run(resign, ["--repo", repo, "--group", "stable", "--keys", signer.keysDir, "--expires-days", "1e3"]),
    ).rejects.toBeInstanceOf(ConfigError);
  });

  test("publish with several packages publishes each, in order; none is dropped", async () => {
    const two = join(base, "repo-two");
    const a = await makePackage(signer, "Alpha_data", 1, { "a.txt": "a\n" }, new Date());
    const b = await makePackage(signer, "Beta_data", 3, { "b.txt": "b\n" }, new Date());
    const files = [join(base, "a.tar"), join(base, "b.tar")];
    writeFileSync(files[0]!, a.bytes);
    writeFileSync(files[1]!, b.bytes);
    const { result } = await run(publish, [
      "--repo",
      two,
      "--group",
      "g",
      "--keys",
      signer.keysDir,
      ...files,
    ]);
    const idx = result as RepoIndex;
    expect(idx.serial).toBe(2);
    expect(idx.content.Alpha_data?.sha384).toBe(a.sha384);
    expect(idx.content.Beta_data?.version).toBe(3);
  });

  test("serve prints its URL, serves the repo and exits cleanly on SIGTERM", async () => {
    // A real process and a real signal: the command must not leave the server running.
    const served = join(base, "served");
    mkdirSync(join(served, "groups/stable"), { recursive: true });
    writeFileSync(join(served, INDEX_PATH("stable")), "{}\n");
    const script = [
      `import { runMain } from "citty";`,
      `import serve from ${JSON.stringify(join(import.meta.dir, "../fleet/contentctl/serve.ts"))};`,
      `await runMain(serve, { rawArgs: JSON.parse(process.env.SERVE_ARGS) });`,
    ].join("\n");
    const proc = Bun.spawn([process.execPath, "-e", script], {
      cwd: join(import.meta.dir, ".."),
      env: {
        ...process.env,
        OUTPOST_LOG_QUIET: "1",
        SERVE_ARGS: JSON.stringify(["--repo", served, "--port", "0"]),
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const reader = proc.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`serve exited early: ${await new Response(proc.stderr).text()}`);
        text += new TextDecoder().decode(value);
      }
      const { url } = JSON.parse(text.slice(0, text.indexOf("\n"))) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const res = await fetch(`${url}${INDEX_PATH("stable")}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("etag")).toBeTruthy();
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      await expect(fetch(`${url}${INDEX_PATH("stable")}`)).rejects.toThrow();
    } finally {
      proc.kill("SIGKILL");
    }
  });

  test("serve refuses a bad port", async () => {
    await expect(run(serve, ["--repo", repo, "--port", "http"])).rejects.toBeInstanceOf(ConfigError);
  });
});
