import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import dgram from "node:dgram";
import {
  type DnsMessage,
  decodeMessage,
  encodeMessage,
  queryMessage,
  RCODE,
  TYPE,
} from "../../../plugins/reputation/dns.ts";
import { SxlClient } from "./client.ts";
import { detectionId, parseQueryName, parseVerdictAddress, queryName, verdictAddress } from "./protocol.ts";
import { type SxlServer, startSxlServer, type VerdictsFile } from "./server.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const ZONE = "sxl.test.example";

describe("DNS messages", () => {
  test("a query and an answer round-trip, names compressed", () => {
    const q = queryMessage(0x1234, "AbC.example.org", TYPE.A, { udpSize: 1232 });
    const back = decodeMessage(encodeMessage(q));
    expect(back.id).toBe(0x1234);
    expect(back.questions).toEqual([{ name: "AbC.example.org", type: TYPE.A, class: 1 }]);
    expect(back.additionals[0]).toMatchObject({ type: TYPE.OPT, class: 1232 });
    const answer: DnsMessage = {
      ...q,
      flags: { ...q.flags, qr: true, aa: true },
      answers: [
        {
          name: "AbC.example.org",
          type: TYPE.A,
          class: 1,
          ttl: 300,
          data: { type: "A", address: "127.0.0.18" },
        },
        {
          name: "AbC.example.org",
          type: TYPE.TXT,
          class: 1,
          ttl: 300,
          data: { type: "TXT", strings: ["v=sxl1", "x".repeat(255)] },
        },
      ],
      additionals: [],
    };
    const wire = encodeMessage(answer);
    // The answer names point back at the question instead of repeating it.
    expect(wire.length).toBeLessThan(12 + 21 + 4 + 2 * (2 + 10) + 4 + 7 + 256 + 10);
    const d = decodeMessage(wire);
    expect(d.answers.map((r) => r.data)).toEqual([
      { type: "A", address: "127.0.0.18" },
      { type: "TXT", strings: ["v=sxl1", "x".repeat(255)] },
    ]);
  });

  const hostile: [string, number[]][] = [
    ["too short", [0, 1, 2]],
    ["pointer loop", [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]],
    ["forward pointer", [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 40, 0, 1, 0, 1]],
    ["label past the end", [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 50, 0x61]],
    ["counts larger than the message", [0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0]],
  ];
  for (const [label, bytes] of hostile) {
    test(`hostile input is rejected: ${label}`, () => {
      expect(() => decodeMessage(new Uint8Array(bytes))).toThrow(/DNS message/);
    });
  }

  test("names and verdict codes", () => {
    const h = sha("file");
    const name = queryName(h, "Troj/Agent-X", ZONE);
    expect(name.split(".").every((l) => l.length <= 63)).toBe(true);
    expect(parseQueryName(name.toUpperCase(), ZONE)).toEqual({
      sha256: h,
      detectionId: detectionId("Troj/Agent-X"),
    });
    expect(parseQueryName(`x.${name}`, ZONE)).toBeNull();
    expect(parseVerdictAddress(verdictAddress("malware", true))).toEqual({
      verdict: "malware",
      sample: true,
    });
    expect(parseVerdictAddress("127.0.0.99")).toBeNull();
    expect(parseVerdictAddress("10.0.0.2")).toBeNull();
  });
});

describe("SXL server and client over real sockets", () => {
  const fpFile = sha("false-positive");
  const verdicts: VerdictsFile = {
    ttl: 300,
    negativeTtl: 45,
    verdicts: [
      { sha256: fpFile, verdict: "ignore", sample: false },
      { detection: "Gen.Suspicious", verdict: "suspicious", sample: true, ttl: 120 },
      { detection: "Gen.Long", verdict: "malware", sample: false, note: "n".repeat(1500) },
    ],
  };
  let server: SxlServer;
  beforeAll(async () => {
    server = await startSxlServer({ zone: ZONE, verdicts });
  });
  afterAll(() => server.stop());
  const client = (extra: Partial<ConstructorParameters<typeof SxlClient>[0]> = {}) =>
    new SxlClient({ zone: ZONE, resolver: { host: "127.0.0.1", port: server.port }, ...extra });

  test("verdicts by hash and by detection, over UDP, then from the cache", async () => {
    const c = client();
    expect(await c.lookup(fpFile, "Any.Detection")).toEqual({
      status: "answered",
      verdict: "ignore",
      sample: false,
      ttl: 300,
      transport: "udp",
    });
    const s = await c.lookup(sha("other"), "Gen.Suspicious");
    expect(s).toMatchObject({ status: "answered", verdict: "suspicious", sample: true, ttl: 120 });
    const before = server.stats.udp;
    expect(await c.lookup(fpFile, "Any.Detection")).toMatchObject({ verdict: "ignore", transport: "cache" });
    expect(server.stats.udp).toBe(before);
    expect(c.stats.cacheHits).toBe(1);
  });

  test("no information is NXDOMAIN, negatively cached for the SOA minimum", async () => {
    let now = 1_000_000;
    const c = client({ now: () => now, minTtlSeconds: 1 });
    expect(await c.lookup(sha("unknown"), "Gen.Nothing")).toEqual({
      status: "no-information",
      ttl: 45,
      transport: "udp",
    });
    now += 44_000;
    expect((await c.lookup(sha("unknown"), "Gen.Nothing")) as { transport: string }).toMatchObject({
      transport: "cache",
    });
    now += 2_000;
    expect((await c.lookup(sha("unknown"), "Gen.Nothing")) as { transport: string }).toMatchObject({
      transport: "udp",
    });
  });

  test("a truncated UDP answer (rate-limit slip) is retried over TCP", async () => {
    const strict = await startSxlServer({ zone: ZONE, verdicts, rrl: { ratePerSecond: 0, burst: 0 } });
    try {
      const c = new SxlClient({ zone: ZONE, resolver: { host: "127.0.0.1", port: strict.port } });
      expect(await c.lookup(sha("x"), "Gen.Suspicious")).toMatchObject({
        status: "answered",
        verdict: "suspicious",
        transport: "tcp",
      });
      expect(strict.stats.truncated).toBe(1);
      expect(strict.stats.tcp).toBe(1);
    } finally {
      await strict.stop();
    }
  });

  test("a resolver that never answers costs a bounded wait, keeps the local verdict, and opens the circuit", async () => {
    const silent = dgram.createSocket("udp4");
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
    try {
      const c = new SxlClient({
        zone: ZONE,
        resolver: { host: "127.0.0.1", port: silent.address().port },
        timeoutMs: 50,
        attempts: 2,
        failureThreshold: 2,
      });
      const t = performance.now();
      expect(await c.lookup(sha("a"), "D")).toMatchObject({ status: "failed", reason: "timeout" });
      expect(performance.now() - t).toBeLessThan(1000);
      expect(await c.lookup(sha("b"), "D")).toMatchObject({ status: "failed", reason: "timeout" });
      const t2 = performance.now();
      expect(await c.lookup(sha("c"), "D")).toMatchObject({ status: "failed", reason: "circuit-open" });
      expect(performance.now() - t2).toBeLessThan(20);
    } finally {
      silent.close();
    }
  });

  test("lookups over the rate limit are skipped, not queued", async () => {
    let now = 0;
    const c = client({ now: () => now, ratePerSecond: 2, burst: 2 });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await c.lookup(sha(`r${i}`), "Gen.Suspicious"));
    expect(results.map((r) => r.status)).toEqual(["answered", "answered", "failed", "failed"]);
    now += 1000;
    expect((await c.lookup(sha("r9"), "Gen.Suspicious")).status).toBe("answered");
  });

  test("spoofed answers (wrong id, wrong letter case) are ignored; the real one is taken", async () => {
    // A resolver in the middle that first sends two forgeries, then relays the real answer.
    const relay = dgram.createSocket("udp4");
    await new Promise<void>((r) => relay.bind(0, "127.0.0.1", () => r()));
    relay.on("message", (msg, rinfo) => {
      const q = decodeMessage(new Uint8Array(msg));
      const forged = (id: number, name: string): Uint8Array =>
        encodeMessage({
          ...q,
          id,
          flags: { ...q.flags, qr: true },
          questions: [{ ...q.questions[0]!, name }],
          answers: [
            {
              name,
              type: TYPE.A,
              class: 1,
              ttl: 9999,
              data: { type: "A", address: verdictAddress("ignore", false) },
            },
          ],
          additionals: [],
        });
      relay.send(forged(q.id ^ 1, q.questions[0]!.name), rinfo.port, rinfo.address);
      relay.send(
        forged(
          q.id,
          q.questions[0]!.name.toLowerCase() === q.questions[0]!.name
            ? q.questions[0]!.name.toUpperCase()
            : q.questions[0]!.name.toLowerCase(),
        ),
        rinfo.port,
        rinfo.address,
      );
      const up = dgram.createSocket("udp4");
      up.on("message", (real) => {
        relay.send(real, rinfo.port, rinfo.address);
        up.close();
      });
      up.send(msg, server.port, "127.0.0.1");
    });
    try {
      const c = new SxlClient({ zone: ZONE, resolver: { host: "127.0.0.1", port: relay.address().port } });
      expect(await c.lookup(sha("real"), "Gen.Suspicious")).toMatchObject({
        status: "answered",
        verdict: "suspicious",
      });
    } finally {
      relay.close();
    }
  });

  test("questions outside the zone are refused", async () => {
    const sock = dgram.createSocket("udp4");
    try {
      const reply = await new Promise<DnsMessage>((resolve) => {
        sock.on("message", (m) => resolve(decodeMessage(new Uint8Array(m))));
        sock.send(encodeMessage(queryMessage(7, "www.example.com", TYPE.A)), server.port, "127.0.0.1");
      });
      expect(reply.flags.rcode).toBe(RCODE.REFUSED);
    } finally {
      sock.close();
    }
  });

  const dig = Bun.which("dig");
  if (!dig)
    console.warn("sxl dig test skipped: dig is not installed (apt-get install dnsutils; .ci/run does)");
  test.skipIf(!dig)("dig reads the same answers: A, TXT, TCP, truncation and NXDOMAIN", async () => {
    // Asynchronous: the server answers from this very event loop.
    const run = (...args: string[]) =>
      new Response(
        Bun.spawn(["dig", "@127.0.0.1", "-p", String(server.port), "+time=2", "+tries=1", ...args]).stdout,
      ).text();
    const susp = queryName(sha("z"), "Gen.Suspicious", ZONE);
    expect((await run(susp, "A", "+short")).trim()).toBe("127.0.0.19");
    expect((await run(susp, "TXT", "+short")).trim()).toBe('"v=sxl1 verdict=suspicious sample=1"');
    expect((await run(susp, "A", "+short", "+tcp")).trim()).toBe("127.0.0.19");
    const long = queryName(sha("z"), "Gen.Long", ZONE);
    const noEdns = await run(long, "TXT", "+noedns", "+ignore");
    expect(noEdns).toMatch(/flags: qr aa tc/);
    expect(await run(long, "TXT", "+noedns")).toContain("note=nnnn");
    const nx = await run(queryName(sha("nothing"), "Gen.None", ZONE), "A");
    expect(nx).toContain("status: NXDOMAIN");
    expect(nx).toMatch(/SOA\s+ns\.sxl\.test\.example\. hostmaster\.sxl\.test\.example\. 1 3600 600 86400 45/);
  });
});
