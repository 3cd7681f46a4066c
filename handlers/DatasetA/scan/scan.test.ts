/**
 * Scanning end to end: real signed DatasetA and LocalRepData content,
 * installed by a real agent whose scanner runs in its own host process;
 * a real SXL DNS server and sample receiver; the control-plane routes and
 * the `agent scan` / `agent rep` commands run as separate processes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "../../../core/agent/events.ts";
import { statePaths } from "../../../core/config.ts";
import { type ControlPlane, startControlPlane } from "../../../core/control/server.ts";
import { makeVendor, startAgent, type TestAgent, type Vendor } from "../../../test/fixtures/vendor.ts";
import { defaultRegistry } from "../../index.ts";
import { buildReputation, tableFromEntries } from "../../LocalRepData/writer.ts";
import { generateVendorKeys, idempotencyKey, importVendorPrivateKey } from "../samples/envelope.ts";
import { type Receiver, startReceiver } from "../samples/receiver.ts";
import { type SxlServer, startSxlServer } from "../sxl/server.ts";
import { buildPe, writeZip } from "../testutil.ts";
import { scanRoutes } from "./routes.ts";
import { attachScanRuntime, createScanRuntime, type ScanRuntime } from "./runtime.ts";
import type { ScanReport } from "./service.ts";

const hex = (s: string) => Buffer.from(s).toString("hex");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const ZONE = "sxl.scan.test";
const ELF = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);

const root = mkdtempSync(join(tmpdir(), "outpost-scan-e2e-"));
const files = join(root, "files");
mkdirSync(files);
const put = (name: string, data: Uint8Array | string) => {
  writeFileSync(join(files, name), data);
  return join(files, name);
};
// The objects: what each must come out as is asserted below.
const markFile = put("mark.txt", "a plain detection: outpost-mark-one, no lookup");
const toolBytes = Buffer.concat([
  ELF,
  Buffer.alloc(4000, 0x90),
  Buffer.from("lookup-this-one"),
  Buffer.alloc(100),
]);
const toolFile = put("tool", toolBytes);
const fpBytes = Buffer.concat([Buffer.from("a known false positive: lookup-this-one"), Buffer.alloc(10, 1)]);
const fpFile = put("fp.bin", fpBytes);
const allowBytes = Buffer.concat([
  ELF,
  Buffer.from("vendor tool with lookup-this-one inside"),
  Buffer.alloc(64, 2),
]);
const allowFile = put("allowed", allowBytes);
const big = Buffer.alloc(20 * 1024 * 1024, 0x41);
Buffer.from("outpost-mark-one").copy(big, big.length - 1000);
const bigFile = put("big.bin", big);
const zipFile = put(
  "bundle.zip",
  writeZip([{ name: "inner/readme.txt", data: Buffer.from("zipped outpost-mark-one") }]),
);
put("clean.txt", "nothing to see");
// A PE signed by a publisher LocalRepData trusts, inside an archive (needs osslsigncode and openssl).
const signTools = !!(Bun.which("osslsigncode") && Bun.which("openssl"));
const signer = (() => {
  if (!signTools) return null;
  const sh = (...cmd: string[]) => {
    const r = Bun.spawnSync(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
    return r.stdout.toString();
  };
  sh(
    "openssl",
    "req",
    "-x509",
    "-nodes",
    "-newkey",
    "rsa:2048",
    "-keyout",
    "pub.key",
    "-out",
    "pub.pem",
    "-subj",
    "/CN=Trusted Publisher",
    "-days",
    "30",
  );
  writeFileSync(join(root, "tool.exe"), buildPe());
  sh(
    "osslsigncode",
    "sign",
    "-certs",
    "pub.pem",
    "-key",
    "pub.key",
    "-in",
    "tool.exe",
    "-out",
    "tool-signed.exe",
  );
  put(
    "installer.zip",
    writeZip([{ name: "bin/tool.exe", data: readFileSync(join(root, "tool-signed.exe")) }]),
  );
  const fp = sh("openssl", "x509", "-in", "pub.pem", "-noout", "-fingerprint", "-sha256");
  return fp.split("=")[1]!.trim().replaceAll(":", "").toLowerCase();
})();

let vendor: Vendor;
let agent: TestAgent;
let sxl: SxlServer;
let receiver: Receiver;
let runtime: ScanRuntime;
let detachRuntime: (() => void) | undefined;
let plane: ControlPlane;
const events: AgentEvent[] = [];

beforeAll(async () => {
  vendor = await makeVendor();
  const vkeys = await generateVendorKeys();
  writeFileSync(join(root, "vendor-pub.pem"), vkeys.publicPem);
  receiver = startReceiver({
    outDir: join(root, "received"),
    key: await importVendorPrivateKey(vkeys.privatePem),
  });
  sxl = await startSxlServer({
    zone: ZONE,
    verdicts: {
      ttl: 300,
      negativeTtl: 60,
      verdicts: [
        { sha256: sha(fpBytes), verdict: "ignore", sample: false },
        { detection: "T.Look", verdict: "suspicious", sample: true },
      ],
    },
  });
  await vendor.release("DatasetA", 1, {
    "main.ndb": [
      `T.Mark:0:*:${hex("outpost-mark-one")}`,
      `T.Look:0:*:${hex("lookup-this-one")}`,
      `T.Mark2:0:*:${hex("outpost-mark-two")}`,
    ].join("\n"),
    "main.hsb": `${sha(Buffer.from("nothing to see"))}:14:T.CleanByHash\n`,
    "lookup.txt": "T.Look\n",
  });
  const rep = buildReputation(
    tableFromEntries([{ sha256: sha(allowBytes), score: 95, class: "application" }], false),
    tableFromEntries(
      signer ? [{ sha256: signer, score: 88, class: "application", name: "Trusted Publisher" }] : [],
      true,
    ),
  );
  await vendor.release("LocalRepData", 1, { "reputation.bin": rep.bytes });
  agent = await startAgent(vendor, {
    registry: defaultRegistry,
    config: {
      liveProtection: {
        lookups: true,
        samples: true,
        zone: ZONE,
        resolver: `127.0.0.1:${sxl.port}`,
        sampleUrl: receiver.url,
        vendorKey: join(root, "vendor-pub.pem"),
      },
    },
  });
  const report = await agent.agent.update();
  expect(report.installed.map((i) => i.type).sort()).toEqual(["DatasetA", "LocalRepData"]);
  agent.agent.events.subscribe((e) => events.push(e));
  runtime = await createScanRuntime(
    { config: agent.agent.config, api: agent.agent, events: agent.agent.events },
    { background: true },
  );
  detachRuntime = attachScanRuntime(agent.agent, runtime);
  plane = await startControlPlane({
    api: agent.agent,
    stateDir: agent.stateDir,
    extensions: [scanRoutes()],
    events: agent.agent.events,
  });
}, 60_000);

afterAll(async () => {
  detachRuntime?.();
  await plane?.stop();
  await runtime?.uploader?.stop();
  await agent?.stop();
  await sxl?.stop();
  await receiver?.stop();
  vendor?.cleanup();
  rmSync(root, { recursive: true, force: true });
});

describe("a scan of a tree through the scanner host process", () => {
  let report: ScanReport;
  beforeAll(async () => {
    report = await runtime.service.scanPaths([files]);
  }, 30_000);
  const byTarget = (t: string) => report.detections.filter((d) => d.target === t);

  test("plain, archived and large (chunked) objects are found", () => {
    expect(byTarget(markFile).map((d) => [d.name, d.verdict])).toEqual([["T.Mark", "malware"]]);
    expect(byTarget(zipFile).map((d) => d.path)).toEqual([["inner/readme.txt"]]);
    expect(byTarget(bigFile).map((d) => d.offset)).toEqual([big.length - 1000]);
    expect(report.objects).toBe(signer ? 8 : 7);
    expect(report.errors).toEqual([]);
    expect(report.found).toBe(true);
  });

  test("a hash signature needs the exact size and digest", () => {
    expect(byTarget(join(files, "clean.txt")).map((d) => d.name)).toEqual(["T.CleanByHash"]);
  });

  test("Live Protection turns a lookup-enabled detection into the cloud's verdict and requests the sample", () => {
    const [d] = byTarget(toolFile);
    expect(d).toMatchObject({
      name: "T.Look",
      verdict: "suspicious",
      live: { status: "answered", verdict: "suspicious", sample: true },
    });
    expect(d!.sample).toMatchObject({ status: "queued", key: idempotencyKey(sha(toolBytes), "T.Look") });
  });

  test("a known false positive is ignored", () => {
    expect(byTarget(fpFile).map((d) => [d.verdict, d.live?.verdict])).toEqual([["ignored", "ignore"]]);
    expect(report.ignored).toBe(1);
  });

  test("a high-reputation file skips the cloud lookup and keeps the local verdict", () => {
    const [d] = byTarget(allowFile);
    expect(d).toMatchObject({
      verdict: "malware",
      live: { status: "skipped", reason: "high-reputation" },
      reputation: { band: "high", score: 95 },
    });
    expect(sxl.stats.udp).toBe(2); // tool and fp.bin only
  });

  test("the requested sample is uploaded, decrypted and stored by the vendor", async () => {
    await runtime.uploader!.drain();
    const key = idempotencyKey(sha(toolBytes), "T.Look");
    expect(readFileSync(join(root, "received", key, "sample.bin"))).toEqual(toolBytes);
    expect(receiver.stats.stored).toBe(1);
  });

  test("executables met are tagged with their reputation: by hash, and by a verified signer inside an archive", () => {
    expect(report.executables.find((x) => x.target === allowFile)?.reputation).toMatchObject({
      band: "high",
      source: "hash",
    });
    expect(report.executables.find((x) => x.target === toolFile)?.reputation).toBeUndefined();
    if (!signer) return console.warn("signer tagging not checked: osslsigncode or openssl missing");
    const pe = report.executables.find((x) => x.path.join("/") === "bin/tool.exe");
    expect(pe).toMatchObject({
      kind: "pe",
      authenticode: { status: "valid", signer: { thumbprint: signer } },
      reputation: { band: "high", score: 88, source: "signer", signerName: "Trusted Publisher" },
    });
  });

  test("every detection is published on the agent's event stream", () => {
    const seen = events.filter((e) => e.type === "scan-detection").map((e) => `${e.name}:${e.verdict}`);
    expect(seen.sort()).toEqual(
      [
        "T.CleanByHash:malware",
        "T.Look:ignored",
        "T.Look:malware",
        "T.Look:suspicious",
        "T.Mark:malware",
        "T.Mark:malware",
        "T.Mark:malware",
      ].sort(),
    );
  });
});

describe("process memory", () => {
  test("a marker that exists only in another process's memory is found there", async () => {
    const child = Bun.spawn(
      [
        process.execPath,
        "-e",
        `globalThis.k = Buffer.from("${hex("outpost-mark-one")}", "hex").toString("latin1").repeat(3); console.log("ready"); setInterval(() => {}, 1000);`,
      ],
      { stdout: "pipe" },
    );
    try {
      const reader = child.stdout.getReader();
      await reader.read();
      const r = await runtime.service.scanProcess(child.pid);
      expect(r.detections.map((d) => d.name)).toContain("T.Mark");
      expect(r.detections.every((d) => d.target.startsWith(`pid:${child.pid}:`))).toBe(true);
      expect(r.objects).toBeGreaterThan(3);
    } finally {
      child.kill();
    }
  }, 30_000);
});

describe("control plane and CLI", () => {
  const auth = () => ({
    authorization: `Bearer ${readFileSync(statePaths(agent.stateDir).controlToken, "utf8").trim()}`,
  });

  test("POST /v1/scan with bytes, and GET /v1/reputation/{sha256}", async () => {
    const res = await fetch(`${plane.url}/v1/scan?name=x.txt`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/octet-stream" },
      body: Buffer.from("bytes with outpost-mark-one in them"),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as ScanReport;
    expect(body.detections.map((d) => d.name)).toEqual(["T.Mark"]);
    const rep = await (
      await fetch(`${plane.url}/v1/reputation/${sha(allowBytes)}`, { headers: auth() })
    ).json();
    expect(rep).toMatchObject({ band: "high", score: 95, source: "hash" });
    const bad = await fetch(`${plane.url}/v1/scan`, {
      method: "POST",
      headers: { ...auth(), "content-type": "application/json" },
      body: '{"path":"relative"}',
    });
    expect(bad.status).toBe(400);
  });

  test("`agent scan` talks to the running agent, streams progress and exits 1 on a find, 0 when clean, 2 for a missing path", async () => {
    const run = async (...args: string[]) => {
      const p = Bun.spawn(
        [
          process.execPath,
          join(import.meta.dir, "../../../bin/agent.ts"),
          "scan",
          "--state",
          agent.stateDir,
          ...args,
        ],
        {
          stdout: "pipe",
          stderr: "pipe",
          env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
        },
      );
      const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
      return { out, code };
    };
    const found = await run("--json", markFile);
    expect(found.code).toBe(1);
    expect((JSON.parse(found.out) as ScanReport).detections.map((d) => d.name)).toEqual(["T.Mark"]);
    const clean = join(root, "clean-only");
    mkdirSync(clean);
    copyFileSync("/usr/bin/true", join(clean, "true"));
    const ok = await run(clean);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("0 detections");
    expect((await run(join(root, "missing"))).code).toBe(2);

    // First match per file by default (clamscan's default); --all-matches reports every signature.
    const both = join(root, "two-marks", "both.bin");
    mkdirSync(join(root, "two-marks"));
    writeFileSync(both, "head outpost-mark-one middle outpost-mark-two tail");
    const first = await run("--json", both);
    expect(first.code).toBe(1);
    expect((JSON.parse(first.out) as ScanReport).detections.map((d) => d.name)).toEqual(["T.Mark"]);
    const all = await run("--json", "--all-matches", both);
    expect(all.code).toBe(1);
    expect((JSON.parse(all.out) as ScanReport).detections.map((d) => d.name).sort()).toEqual([
      "T.Mark",
      "T.Mark2",
    ]);
    expect((await runtime.service.scanPaths([both])).detections.length).toBe(1);
    expect((await runtime.service.scanPaths([both], { allMatches: true })).detections.length).toBe(2);
  }, 30_000);

  test("`agent rep` answers by hash or by file", async () => {
    const p = Bun.spawn(
      [
        process.execPath,
        join(import.meta.dir, "../../../bin/agent.ts"),
        "rep",
        "--state",
        agent.stateDir,
        allowFile,
      ],
      {
        stdout: "pipe",
        env: { ...process.env, OUTPOST_LOG_QUIET: "1" },
      },
    );
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    expect(out.trim()).toBe(`${sha(allowBytes)}: high reputation (score 95, application) by hash`);
  }, 30_000);

  test("queued samples left in the state directory are never queued twice", async () => {
    // The tool's sample went out above; scanning it again must not queue it again.
    const again = await runtime.service.scanPaths([toolFile]);
    expect(again.detections[0]!.sample?.status).toBe("already-sent");
    expect(readdirSync(join(agent.stateDir, "samples", "queue"))).toEqual([]);
  });
});
