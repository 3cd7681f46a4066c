import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { type RepoServer, safeRelativePath, serveRepo } from "./serve.ts";

let base: string;
let repo: string;
let server: RepoServer;
const INDEX = '{"schema":1}\n';
const BIG = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "outpost-serve-"));
  repo = join(base, "repo");
  mkdirSync(join(repo, "groups/stable"), { recursive: true });
  mkdirSync(join(repo, "packages/Alpha"), { recursive: true });
  writeFileSync(join(repo, "groups/stable/index.json"), INDEX);
  writeFileSync(join(repo, "groups/stable/index.p7s"), new Uint8Array([0x30, 0x80]));
  writeFileSync(join(repo, "groups/stable/.index.json.123.tmp"), "half written");
  writeFileSync(join(repo, "packages/Alpha/Alpha-1-0123456789abcdef.tar"), BIG);
  writeFileSync(join(base, "secret.txt"), "top secret\n");
  symlinkSync(join(base, "secret.txt"), join(repo, "packages/link.tar"));
  server = serveRepo({ repo, port: 0 });
});

afterAll(async () => {
  await server.stop(true);
  rmSync(base, { recursive: true, force: true });
});

function url(path: string): string {
  return `http://127.0.0.1:${server.port}${path}`;
}

/** Sends the request target byte for byte: fetch() would normalise `..` away before sending. */
function rawGet(target: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port!, "127.0.0.1", () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    let text = "";
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1");
    });
    socket.on("end", () => resolve({ status: Number(text.split(" ")[1]), text }));
    socket.on("error", reject);
  });
}

describe("serveRepo", () => {
  test("listens on loopback by default", () => {
    expect(server.hostname).toBe("127.0.0.1");
    expect(server.port).toBeGreaterThan(0);
  });

  test("GET of an index: 200, strong ETag, Content-Length, no-cache, Last-Modified", async () => {
    const res = await fetch(url("/groups/stable/index.json"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(INDEX);
    const etag = res.headers.get("etag");
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$/);
    expect(res.headers.get("content-length")).toBe(String(INDEX.length));
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(Date.parse(res.headers.get("last-modified")!)).toBeGreaterThan(0);
    const sig = await fetch(url("/groups/stable/index.p7s"));
    expect(sig.headers.get("cache-control")).toBe("no-cache");
    expect(new Uint8Array(await sig.arrayBuffer())).toEqual(new Uint8Array([0x30, 0x80]));
  });

  test("If-None-Match with the current ETag is 304 without a body; a changed file is 200 again", async () => {
    const path = join(repo, "groups/stable/index.json");
    const etag = (await fetch(url("/groups/stable/index.json"))).headers.get("etag")!;
    const res = await fetch(url("/groups/stable/index.json"), {
      headers: { "If-None-Match": `"x", W/${etag}` },
    });
    expect(res.status).toBe(304);
    expect(res.headers.get("etag")).toBe(etag);
    expect(await res.text()).toBe("");
    // Publish replaces files by rename: a new inode, so a new ETag.
    writeFileSync(`${path}.new`, '{"schema":1,"serial":2}\n');
    renameSync(`${path}.new`, path);
    const changed = await fetch(url("/groups/stable/index.json"), { headers: { "If-None-Match": etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get("etag")).not.toBe(etag);
    writeFileSync(path, INDEX);
  });

  test("large packages stream whole, immutable", async () => {
    const res = await fetch(url("/packages/Alpha/Alpha-1-0123456789abcdef.tar"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(BIG.length));
    expect(res.headers.get("cache-control")).toContain("immutable");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BIG);
  });

  test("HEAD gives the headers of GET and no body", async () => {
    const res = await fetch(url("/packages/Alpha/Alpha-1-0123456789abcdef.tar"), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(BIG.length));
    expect(res.headers.get("etag")).toBeTruthy();
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  test("missing files, directories, dot-files and symlinks out of the repo are 404", async () => {
    for (const path of [
      "/groups/stable/missing.json",
      "/groups/stable",
      "/groups/stable/",
      "/",
      "/groups/stable/.index.json.123.tmp",
      "/packages/link.tar",
    ]) {
      expect({ path, status: (await fetch(url(path))).status }).toEqual({ path, status: 404 });
    }
  });

  // Bun normalises literal and %2e dot segments before the handler sees them (so they cannot
  // climb above the root); encoded separators are what a naive decode-then-join would let through.
  test("traversal attempts are refused", async () => {
    for (const target of [
      "/../secret.txt",
      "/groups/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/%2E%2E/%2e%2e/secret.txt",
      "/groups/stable/%2e%2e/%2e%2e/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/packages/..%5c..%5csecret.txt",
      "/groups%2f..%2f..%2fsecret.txt",
      "/%00/secret.txt",
      "/%zz",
    ]) {
      const res = await rawGet(target);
      expect({ target, status: res.status }).toEqual({ target, status: 404 });
      expect(res.text).not.toContain("top secret");
    }
  });

  test("only GET and HEAD", async () => {
    const res = await fetch(url("/groups/stable/index.json"), { method: "POST", body: "x" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, HEAD");
  });

  test("a missing repository folder is a ConfigError", () => {
    expect(() => serveRepo({ repo: join(base, "nope"), port: 0 })).toThrow(ConfigError);
  });
});

describe("safeRelativePath", () => {
  test("accepts plain paths and refuses dot, empty and encoded-separator segments", () => {
    expect(safeRelativePath("http://h/groups/stable/index.json")).toBe("groups/stable/index.json");
    expect(safeRelativePath("http://h/packages/A/A-1-ab.tar?x=1")).toBe("packages/A/A-1-ab.tar");
    for (const bad of [
      "http://h/",
      "http://h/a//b",
      "http://h/a%2fb",
      "http://h/a%5cb",
      "http://h/.x",
      "http://h/%zz",
    ]) {
      expect(safeRelativePath(bad)).toBeNull();
    }
  });
});
