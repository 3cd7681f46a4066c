import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCapabilities, pathAllowed } from "./capabilities.ts";
import { type HandlerManifestInput, HandlerManifestSchema } from "./contract.ts";

const dir = mkdtempSync(join(tmpdir(), "outpost-caps-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const allowed = join(dir, "allowed");
const secret = join(dir, "secret");
mkdirSync(allowed);
mkdirSync(secret);
writeFileSync(join(allowed, "a.txt"), "ok");
writeFileSync(join(secret, "s.txt"), "no");
symlinkSync(join(secret, "s.txt"), join(allowed, "link.txt"));

const ctx = { log: { info() {}, warn() {} }, emit() {}, workDir: join(dir, "work") };
const manifest = (privileges: Partial<HandlerManifestInput["privileges"]>) =>
  HandlerManifestSchema.parse({
    name: "Caps",
    description: "t",
    group: "test",
    privileges: { runAs: "agent", fs: { mode: "none" }, net: "none", exec: false, ...privileges },
  });

test("undeclared capabilities are absent, not stubbed", () => {
  const caps = createCapabilities(manifest({}), ctx);
  expect(caps.fs).toBeUndefined();
  expect(caps.net).toBeUndefined();
  expect(caps.exec).toBeUndefined();
  expect(caps.agent).toBeUndefined();
  expect(caps.workDir).toBe(ctx.workDir);
});

test("read-only fs: declared paths readable, others and symlinks out denied, no write functions", () => {
  const caps = createCapabilities(manifest({ fs: { mode: "read-only", paths: [`${allowed}/**`] } }), ctx);
  expect(caps.fs?.readText(join(allowed, "a.txt"))).toBe("ok");
  expect(() => caps.fs?.readText(join(secret, "s.txt"))).toThrow(
    expect.objectContaining({ code: "HND_FS_DENIED" }),
  );
  expect(() => caps.fs?.readText(join(allowed, "link.txt"))).toThrow(
    expect.objectContaining({ code: "HND_FS_DENIED" }),
  );
  expect(() => caps.fs?.readText(join(allowed, "../secret/s.txt"))).toThrow(
    expect.objectContaining({ code: "HND_FS_DENIED" }),
  );
  expect(caps.fs?.writeFile).toBeUndefined();
});

test("read-write fs writes only inside its globs", () => {
  const caps = createCapabilities(manifest({ fs: { mode: "read-write", paths: [`${allowed}/**`] } }), ctx);
  caps.fs?.writeFile?.(join(allowed, "new.txt"), "x");
  expect(caps.fs?.readText(join(allowed, "new.txt"))).toBe("x");
  expect(() => caps.fs?.writeFile?.(join(secret, "x"), "x")).toThrow(
    expect.objectContaining({ code: "HND_FS_DENIED" }),
  );
});

test("net: only declared endpoints", async () => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hi") });
  try {
    const caps = createCapabilities(manifest({ net: [`http:127.0.0.1:${server.port}`] }), ctx);
    expect(await (await caps.net!.fetch(`http://127.0.0.1:${server.port}/`)).text()).toBe("hi");
    await expect(caps.net!.fetch("http://localhost:1/")).rejects.toMatchObject({ code: "HND_NET_DENIED" });
  } finally {
    server.stop(true);
  }
});

test("glob semantics", () => {
  expect(pathAllowed("/var/lib/outpost/x/y", ["/var/lib/outpost/**"])).toBe(true);
  expect(pathAllowed("/var/lib/outpost", ["/var/lib/outpost/**"])).toBe(true);
  expect(pathAllowed("/var/lib/outpostx", ["/var/lib/outpost/**"])).toBe(false);
  expect(pathAllowed("/etc/passwd", ["/etc/*"])).toBe(true);
  expect(pathAllowed("/etc/ssh/x", ["/etc/*"])).toBe(false);
});
