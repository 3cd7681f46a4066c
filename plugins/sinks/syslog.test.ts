/**
 * The syslog sink against a real rsyslogd started by the test (imrelp on a
 * loopback port, imptcp on a unix socket, omfile to a temp file): RFC 5424
 * with the batch key and seq in structured data, an outage in the middle
 * over RELP, and a count check — each row stored once. The target's config
 * forms (`socket`, `address: "host:port"`, `host: "host:port"` or
 * `"[::1]:port"`, `host` + `port`) each reach the real server; bad ones
 * fail with an error naming the key.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import "./kinds.ts";
import { QueuedSink } from "./queued-sink.ts";
import { buildSinks } from "./registry.ts";
import { SyslogDestination, SyslogSinkSchema, splitHostPort } from "./syslog.ts";
import { haveRsyslog, type Rsyslog, startRsyslog, waitFor } from "./testutil/servers.ts";

const root = mkdtempSync(join(tmpdir(), "outpost-syslog-"));
let rs: Rsyslog;
let n = 0;
const fast = { minBackoffMs: 5, maxBackoffMs: 100 };
const line = (seq: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    name: "pack_p_q",
    hostIdentifier: "h1",
    unixTime: 1796320800,
    action: "added",
    columns: { seq: String(seq), ...extra },
  });
const lines = (from: number, count: number) => Array.from({ length: count }, (_, i) => line(from + i));

/** (key, seq) of every stored message, from the structured data. */
function stored(): { key: string; seq: number; line: string }[] {
  return rs.lines().map((l) => {
    const m = /\[outpost@32473 key="([^"]+)" seq="(\d+)"/.exec(l);
    if (!m) throw new Error(`no structured data in ${l}`);
    return { key: m[1]!, seq: Number(m[2]), line: l };
  });
}

function sink(cfg: Record<string, unknown>) {
  const dest = new SyslogDestination(SyslogSinkSchema.parse({ hostname: "agent-1", ...cfg }));
  return { dest, sink: new QueuedSink(dest, { dir: join(root, `q-${++n}`), ...fast }).start() };
}

describe("syslog target config", () => {
  test("host:port, [IPv6]:port, bare names and IPv6 addresses split as written", () => {
    expect(splitHostPort("127.0.0.1:514")).toEqual({ host: "127.0.0.1", port: 514 });
    expect(splitHostPort("siem.example.com:6514")).toEqual({ host: "siem.example.com", port: 6514 });
    expect(splitHostPort("[::1]:514")).toEqual({ host: "::1", port: 514 });
    expect(splitHostPort("[fe80::1%eth0]:514")).toEqual({ host: "fe80::1%eth0", port: 514 });
    expect(splitHostPort("[::1]")).toEqual({ host: "::1" });
    expect(splitHostPort("::1")).toEqual({ host: "::1" });
    expect(splitHostPort("siem")).toEqual({ host: "siem" });
    expect(splitHostPort("siem:0")).toBe("port 0 is not in 1-65535");
    expect(splitHostPort("siem:70000")).toBe("port 70000 is not in 1-65535");
    expect(splitHostPort("siem:syslog")).toContain("is not host, host:port or [IPv6]:port");
    expect(splitHostPort("[::1]:")).toContain("is not host");
  });

  test("every accepted form comes out as socket, or host + port", () => {
    const target = (c: Record<string, unknown>) => {
      const { socket, host, port } = SyslogSinkSchema.parse(c);
      return { socket, host, port };
    };
    const net = (host: string, port: number) => ({ socket: undefined, host, port });
    expect(target({ address: "127.0.0.1:514" })).toEqual(net("127.0.0.1", 514));
    expect(target({ host: "127.0.0.1:514" })).toEqual(net("127.0.0.1", 514));
    expect(target({ host: "[::1]:514" })).toEqual(net("::1", 514));
    expect(target({ address: "[::1]:2514" })).toEqual(net("::1", 2514));
    expect(target({ host: "::1", port: 514 })).toEqual(net("::1", 514));
    expect(target({ host: "siem", port: 514 })).toEqual(net("siem", 514));
    expect(target({ socket: "/run/x.sock" })).toEqual({
      socket: "/run/x.sock",
      host: undefined,
      port: undefined,
    });
  });

  test("a bad target fails the start with CFG_INVALID naming the key at fault", () => {
    const error = (syslog: Record<string, unknown>) => {
      try {
        buildSinks({ syslog }, { queueRoot: join(root, "cfg"), where: "query.results" });
      } catch (e) {
        return { code: (e as { code?: string }).code, message: (e as Error).message };
      }
      throw new Error("accepted");
    };
    expect(error({ address: "siem" })).toEqual({
      code: "CFG_INVALID",
      message: expect.stringContaining('query.results.syslog.address: missing port: "siem" is not host:port'),
    });
    expect(error({ address: "siem:99999" }).message).toContain(
      "query.results.syslog.address: port 99999 is not in 1-65535",
    );
    expect(error({ host: "siem" }).message).toContain(
      'query.results.syslog.port: missing: no port in `host` ("siem")',
    );
    expect(error({ host: "siem:514", port: 514 }).message).toContain(
      "query.results.syslog.port: the port is already in `host`",
    );
    expect(error({ address: "siem:514", host: "siem" }).message).toContain(
      "query.results.syslog.host: not with `address`",
    );
    expect(error({ socket: "/run/x.sock", address: "siem:514" }).message).toContain(
      "query.results.syslog.address: not with `socket`",
    );
    expect(error({ port: 514 }).message).toContain("query.results.syslog.host: missing");
    expect(error({}).message).toContain("query.results.syslog.address: missing");
    expect(error({ adress: "siem:514" }).message).toContain("query.results.syslog");
  });
});

describe.skipIf(!haveRsyslog)("syslog sink → real rsyslogd", () => {
  beforeAll(async () => {
    rs = await startRsyslog();
  }, 60_000);
  afterAll(async () => {
    await rs?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  test("RELP: RFC 5424 messages with facility, key and seq; outage in the middle; stored once each", async () => {
    const before = stored().length;
    const { sink: s } = sink({ host: "127.0.0.1", port: rs.port, facility: "local3" });
    try {
      await s.write({ generation: "g", first: 1, lines: lines(1, 50) });
      expect(await s.flush(20_000)).toBe(true);
      await waitFor("50 messages in the file", () => stored().length >= before + 50);
      const first = stored()[before]!;
      // <PRI> = local3 (19) * 8 + info (6) = 158, version 1, our hostname and the query name as MSGID.
      expect(first.line).toMatch(
        /^<158>1 2026-12-03T\S+ agent-1 outpost \d+ pack_p_q \[outpost@32473 key="g:1-50" seq="1"\] \{"name":"pack_p_q"/,
      );
      await rs.stop();
      for (let i = 0; i < 4; i++)
        await s.write({ generation: "g", first: 51 + i * 50, lines: lines(51 + i * 50, 50) });
      const end = Date.now() + 20_000;
      while (s.stats().retried === 0 && Date.now() < end) await Bun.sleep(20);
      expect(s.stats()).toMatchObject({ queued: 200, dropped: 0 });
      expect(s.stats().retried).toBeGreaterThan(0);
      await rs.start();
      s.retryNow();
      expect(await s.flush(30_000)).toBe(true);
      await waitFor("250 messages in the file", () => stored().length >= before + 250);
      const mine = stored().slice(before);
      expect(mine.length).toBe(250);
      expect(new Set(mine.map((m) => m.seq)).size).toBe(250);
      expect(s.stats()).toMatchObject({ sent: 250, dropped: 0 });
    } finally {
      await s.close();
    }
  }, 120_000);

  test("unix stream socket with octet counting; an oversized row is cut and marked, not lost", async () => {
    const before = stored().length;
    const { dest, sink: s } = sink({ socket: rs.socket, maxMessageBytes: 4096 });
    try {
      await s.write({ generation: "u", first: 1, lines: [line(1), line(2, { big: "y".repeat(100_000) })] });
      expect(await s.flush(20_000)).toBe(true);
      await waitFor("2 messages", () => stored().length >= before + 2);
      const mine = stored().slice(before);
      expect(mine.map((m) => [m.key, m.seq])).toEqual([
        ["u:1-2", 1],
        ["u:1-2", 2],
      ]);
      expect(mine[1]!.line).toMatch(/truncated="\d+"/);
      expect(dest.counters.truncatedRows).toBe(1);
    } finally {
      await s.close();
    }
  }, 60_000);

  test("TCP (octet counting) and UDP deliver the same RFC 5424 messages (without acknowledgement)", async () => {
    for (const [protocol, port, gen] of [
      ["tcp", rs.tcpPort, "t"],
      ["udp", rs.udpPort, "d"],
    ] as const) {
      const before = stored().length;
      const { sink: s } = sink({ host: "127.0.0.1", port, protocol });
      try {
        await s.write({ generation: gen, first: 1, lines: lines(1, 20) });
        expect(await s.flush(20_000)).toBe(true);
        await waitFor(`${protocol}: 20 messages`, () => stored().length >= before + 20);
        const mine = stored().slice(before);
        expect(mine.map((m) => m.key)).toEqual(Array(20).fill(`${gen}:1-20`));
        expect(mine.map((m) => m.seq).sort((a, b) => a - b)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        expect(s.stats()).toMatchObject({ kind: "syslog", sent: 20, dropped: 0 });
      } finally {
        await s.close();
      }
    }
  }, 60_000);

  test("each target form reaches the real server: address, host:port, [::1]:port, host + port", async () => {
    const forms: [string, Record<string, unknown>][] = [
      ["fa", { address: `127.0.0.1:${rs.port}` }],
      ["fh", { host: `127.0.0.1:${rs.port}` }],
      ["f6", { host: `[::1]:${rs.port6}` }],
      ["fa6", { address: `[::1]:${rs.port6}` }],
      ["fp", { host: "127.0.0.1", port: rs.port }],
    ];
    for (const [gen, cfg] of forms) {
      const before = stored().length;
      const { dest, sink: s } = sink(cfg);
      try {
        await s.write({ generation: gen, first: 1, lines: lines(1, 5) });
        expect(await s.flush(20_000)).toBe(true);
        await waitFor(`${JSON.stringify(cfg)}: 5 messages`, () => stored().length >= before + 5);
        expect(
          stored()
            .slice(before)
            .map((m) => `${m.key}/${m.seq}`),
        ).toEqual([1, 2, 3, 4, 5].map((i) => `${gen}:1-5/${i}`));
        expect(s.stats()).toMatchObject({ sent: 5, dropped: 0 });
        expect(dest.name).toBe(
          gen.endsWith("6") ? `syslog:relp://[::1]:${rs.port6}` : `syslog:relp://127.0.0.1:${rs.port}`,
        );
      } finally {
        await s.close();
      }
    }
  }, 60_000);
});
