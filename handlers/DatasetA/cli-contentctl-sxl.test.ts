/** `contentctl sxl serve` and `contentctl samples keygen|receive`, run as the vendor runs them. */
import { afterAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { idempotencyKey, importVendorPublicKey, sealSample } from "./samples/envelope.ts";
import { SxlClient } from "./sxl/client.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-vendor-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const CLI = join(import.meta.dir, "../../bin/contentctl.ts");
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

function start(...args: string[]) {
  const proc = Bun.spawn([process.execPath, CLI, ...args], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  const reader = proc.stdout.getReader();
  let buffered = "";
  /** The next JSON line the command prints. */
  const nextLine = async (): Promise<Record<string, unknown>> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`command ended: ${buffered}`);
      buffered += new TextDecoder().decode(value);
    }
    const nl = buffered.indexOf("\n");
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    return JSON.parse(line) as Record<string, unknown>;
  };
  return { proc, nextLine };
}

test("sxl serve answers lookups, reloads its verdicts on SIGHUP, and stops on SIGTERM", async () => {
  const verdicts = join(dir, "verdicts.json");
  const write = (verdict: string) =>
    writeFileSync(
      verdicts,
      JSON.stringify({ zone: "sxl.cli.test", verdicts: [{ sha256: sha("f"), verdict }] }),
    );
  write("malware");
  const { proc, nextLine } = start("sxl", "serve", "--port", "0", "--verdicts", verdicts);
  try {
    const { port, zone } = (await nextLine()) as { port: number; zone: string };
    expect(zone).toBe("sxl.cli.test");
    const lookup = () =>
      new SxlClient({ zone, resolver: { host: "127.0.0.1", port }, cacheSize: 0 }).lookup(sha("f"), "Any");
    expect(await lookup()).toMatchObject({ status: "answered", verdict: "malware" });
    write("ignore");
    proc.kill("SIGHUP");
    expect(await nextLine()).toEqual({ msg: "verdicts reloaded", rules: 1 });
    const answer = await lookup();
    expect(answer).toMatchObject({ status: "answered", verdict: "ignore" });
  } finally {
    proc.kill("SIGTERM");
  }
  expect(await proc.exited).toBe(0);
}, 30_000);

test("samples keygen writes a private key only its owner can read; receive stores a sealed sample", async () => {
  const keygen = Bun.spawnSync([process.execPath, CLI, "samples", "keygen", "--dir", "vk", "--json"], {
    cwd: dir,
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  expect(keygen.exitCode).toBe(0);
  const { privateKey, publicKey } = JSON.parse(keygen.stdout.toString()) as {
    privateKey: string;
    publicKey: string;
  };
  expect(statSync(join(dir, privateKey)).mode & 0o777).toBe(0o600);
  const again = Bun.spawnSync([process.execPath, CLI, "samples", "keygen", "--dir", "vk"], {
    cwd: dir,
    env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
  });
  expect(again.exitCode).toBe(2);

  const { proc, nextLine } = start(
    "samples",
    "receive",
    "--port",
    "0",
    "--key",
    privateKey,
    "--out",
    "received",
  );
  try {
    const { url } = (await nextLine()) as { url: string };
    const data = new TextEncoder().encode("\x7fELF sample");
    const key = idempotencyKey(sha("\x7fELF sample"), "D");
    const envelope = await sealSample(
      {
        schema: 1,
        idempotencyKey: key,
        sha256: sha("\x7fELF sample"),
        size: data.length,
        fileName: "x",
        fileKind: "elf",
        detection: { name: "D", kind: "body" },
        agent: { version: "t", host: "h" },
        createdAt: new Date().toISOString(),
      },
      data,
      await importVendorPublicKey(readFileSync(join(dir, publicKey), "utf8")),
    );
    const post = () =>
      fetch(url, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: envelope as Uint8Array<ArrayBuffer>,
      });
    expect((await post()).status).toBe(201);
    expect(await (await post()).json()).toEqual({ status: "duplicate", key });
    expect(readFileSync(join(dir, "received", key, "sample.bin"), "latin1")).toBe("\x7fELF sample");
  } finally {
    proc.kill("SIGTERM");
  }
  expect(await proc.exited).toBe(0);
}, 30_000);
