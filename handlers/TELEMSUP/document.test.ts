/** TELEMSUP document checks, one test per attack (rules TS1–TS8 in document.ts). */
import { describe, expect, test } from "bun:test";
import { parseAllowedServer } from "../../core/telemetry/config.ts";
import { checkTelemsup, parseHeader, resolveTarget, type TelemsupDocument } from "./document.ts";

const SEED = {
  additionalHeaders: "x-amz-acl:bucket-owner-full-control",
  port: 0,
  resourceRoot: "prod",
  server: "t1.sophosupd.com",
  verb: "PUT",
  interval: 86400,
};

const check = (patch: Record<string, unknown>) => checkTelemsup(JSON.stringify({ ...SEED, ...patch }));
const reason = (patch: Record<string, unknown>) => {
  const r = check(patch);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(patch)}`);
  return r.reason;
};

describe("the seed's document", () => {
  test("is accepted as written, header parsed", () => {
    const r = checkTelemsup(JSON.stringify(SEED));
    expect(r.ok).toBe(true);
    if (r.ok)
      expect(r.doc.additionalHeaders).toEqual([{ name: "x-amz-acl", value: "bucket-owner-full-control" }]);
  });
});

describe("refused documents", () => {
  test("TS1: a verb other than PUT or POST", () => {
    for (const verb of ["GET", "DELETE", "put", "PATCH"]) expect(reason({ verb })).toContain("TS1");
  });
  test("TS2: a server that is a URL, has a port, user info or is an IP literal", () => {
    for (const server of [
      "https://t1.example.com",
      "t1.example.com:443",
      "user@t1.example.com",
      "10.0.0.1",
      "",
      "a..b",
    ])
      expect(reason({ server })).toContain("TS2");
  });
  test("TS3: a port out of range or fractional", () => {
    for (const port of [-1, 65536, 1.5]) expect(reason({ port })).toContain("TS3");
  });
  test("TS4: an interval of 0, too short, too long or fractional", () => {
    expect(reason({ interval: 0 })).toContain("TS4");
    expect(reason({ interval: 299 })).toContain("TS4");
    expect(reason({ interval: 8 * 86400 })).toContain("TS4");
    expect(reason({ interval: 3600.5 })).toContain("TS4");
  });
  test("TS5: a header with CRLF (header injection), NUL, no colon, a bad name or a reserved header", () => {
    expect(reason({ additionalHeaders: "x-a:b\r\nx-evil:1" })).toContain("CR, LF");
    expect(reason({ additionalHeaders: ["x-a:b\n"] })).toContain("CR, LF");
    expect(reason({ additionalHeaders: "x-a:b\u0000" })).toContain("CR, LF");
    expect(reason({ additionalHeaders: "novalue" })).toContain("name:value");
    expect(reason({ additionalHeaders: "bad name:v" })).toContain("not a token");
    expect(reason({ additionalHeaders: "Authorization:Bearer stolen" })).toContain("set by the agent");
    expect(reason({ additionalHeaders: "Host:evil.example" })).toContain("set by the agent");
    expect(parseHeader("X-Trace: abc ")).toEqual({ name: "x-trace", value: "abc" });
  });
  test("TS6: a resource root that escapes or carries a query", () => {
    for (const resourceRoot of ["../etc", "a/../../b", "a//b", "a?x=1", "a#f", "a b", "a/./b"])
      expect(reason({ resourceRoot })).toContain("TS6");
    expect(check({ resourceRoot: "/telemetry/v1" }).ok).toBe(true);
  });
  test("TS7: an unknown field, and not JSON at all", () => {
    expect(reason({ url: "https://evil.example/" })).toContain("TS7");
    const r = checkTelemsup("{not json");
    expect(r.ok).toBe(false);
  });
});

describe("TS8: the pinned allow-list", () => {
  const doc = (patch: Partial<TelemsupDocument> = {}): TelemsupDocument => {
    const r = checkTelemsup(JSON.stringify({ ...SEED, ...patch }));
    if (!r.ok) throw new Error(r.reason);
    return r.doc;
  };
  const allowed = [
    "t1.sophosupd.com",
    "http://127.0.0.1.nip.io:8080",
    "https://telemetry.example.com:8443",
  ].map(parseAllowedServer);

  test("a server outside the allow-list is refused, naming the allow-list", () => {
    const r = resolveTarget(doc({ server: "evil.example.com" }), allowed, "agent-1");
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.reason).toMatch(/^TS8: server evil\.example\.com is not in telemetry\.allowedServers/);
    expect(resolveTarget(doc(), [], "a").ok).toBe(false);
  });
  test("a look-alike host (suffix, case) is not the pinned one", () => {
    expect(resolveTarget(doc({ server: "t1.sophosupd.com.evil.example" }), allowed, "a").ok).toBe(false);
    expect(resolveTarget(doc({ server: "T1.SOPHOSUPD.COM" }), allowed, "a").ok).toBe(true);
  });
  test("a pinned port must match; port 0 takes the pinned one", () => {
    expect(resolveTarget(doc({ server: "telemetry.example.com", port: 9999 }), allowed, "a").ok).toBe(false);
    const r = resolveTarget(doc({ server: "telemetry.example.com", port: 0 }), allowed, "a/b");
    expect(r).toEqual({
      ok: true,
      target: {
        url: "https://telemetry.example.com:8443/prod/a%2Fb",
        method: "PUT",
        headers: { "x-amz-acl": "bucket-owner-full-control" },
        intervalSeconds: 86400,
      },
    });
  });
  test("the scheme comes from config, never from content", () => {
    const r = resolveTarget(doc({ server: "127.0.0.1.nip.io", port: 0, verb: "POST" }), allowed, "id");
    expect(r.ok && r.target.url).toBe("http://127.0.0.1.nip.io:8080/prod/id");
    const r2 = resolveTarget(doc(), allowed, "id");
    expect(r2.ok && r2.target.url).toBe("https://t1.sophosupd.com/prod/id");
  });
});
