/**
 * Vendor-side Live Protection commands (wired into `contentctl`):
 *
 *   contentctl sxl serve --port P --verdicts FILE [--zone Z] [--host H] [--rrl-rate N --rrl-burst M]
 *       an authoritative DNS server (UDP + TCP) answering SXL lookups; SIGHUP reloads the verdicts
 *   contentctl samples keygen --dir DIR
 *       the ECDH P-384 key pair samples are encrypted to (sample-key.pem 0600, sample-pub.pem)
 *   contentctl samples receive --port P --key sample-key.pem --out DIR
 *       the HTTP receiver that decrypts, checks and stores submissions once per idempotency key
 *
 * The servers print one JSON line with where they listen (and `sxl serve` one per reload), then
 * run until SIGINT/SIGTERM.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { printJson, printText } from "../../core/cli/output.ts";
import { ConfigError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import { log } from "../../core/log.ts";
import { generateVendorKeys, importVendorPrivateKey } from "./samples/envelope.ts";
import { startReceiver } from "./samples/receiver.ts";
import { loadVerdicts, startSxlServer } from "./sxl/server.ts";

function port(v: string | undefined, what: string): number {
  const n = Number(v ?? "0");
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new ConfigError("CFG_INVALID_ARGUMENT", `${what} must be a port number`);
  return n;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}

const serve = defineCommand({
  meta: { name: "serve", description: "Serve SXL lookups over DNS (UDP and TCP) from a verdicts file" },
  args: {
    verdicts: {
      type: "string",
      required: true,
      valueHint: "FILE",
      description: "verdicts JSON (docs/sxl.md)",
    },
    port: { type: "string", default: "5353", description: "UDP and TCP port (0 = any free port)" },
    host: { type: "string", default: "127.0.0.1", description: "address to listen on" },
    zone: { type: "string", description: "SXL zone (default: the verdicts file's zone)" },
    "rrl-rate": {
      type: "string",
      description: "UDP answers per second per client before answers slip to TCP",
    },
    "rrl-burst": { type: "string", description: "burst for --rrl-rate (default: the rate)" },
  },
  async run({ args }) {
    const verdicts = loadVerdicts(args.verdicts);
    const zone = args.zone ?? verdicts.zone;
    if (!zone)
      throw new ConfigError("CFG_INVALID_ARGUMENT", "--zone is required when the verdicts file names none");
    const rate = args["rrl-rate"] === undefined ? undefined : Number(args["rrl-rate"]);
    if (rate !== undefined && !(rate >= 0))
      throw new ConfigError("CFG_INVALID_ARGUMENT", "--rrl-rate must be ≥ 0");
    const server = await startSxlServer({
      zone,
      verdicts,
      host: args.host,
      port: port(args.port, "--port"),
      ...(rate !== undefined
        ? { rrl: { ratePerSecond: rate, burst: Number(args["rrl-burst"] ?? rate) } }
        : {}),
    });
    const onHup = () => {
      try {
        const v = loadVerdicts(args.verdicts);
        server.reload(v);
        printText(JSON.stringify({ msg: "verdicts reloaded", rules: v.verdicts.length }));
      } catch (e) {
        log
          .child({ component: "sxl-server" })
          .error("reload failed; keeping the previous verdicts", { error: (e as Error).message });
      }
    };
    process.on("SIGHUP", onHup);
    printText(
      JSON.stringify({
        msg: "sxl server listening",
        host: server.host,
        port: server.port,
        zone: server.zone,
      }),
    );
    await untilSignal();
    process.off("SIGHUP", onHup);
    await server.stop();
  },
});

const keygen = defineCommand({
  meta: { name: "keygen", description: "Create the vendor key pair samples are encrypted to" },
  args: {
    dir: {
      type: "string",
      required: true,
      description: "directory for sample-key.pem (0600) and sample-pub.pem",
    },
    force: { type: "boolean", default: false, description: "overwrite an existing key" },
    json: { type: "boolean", default: false, description: "print the paths as JSON" },
  },
  async run({ args }) {
    mkdirSync(args.dir, { recursive: true, mode: 0o700 });
    const priv = join(args.dir, "sample-key.pem");
    const pub = join(args.dir, "sample-pub.pem");
    if (existsSync(priv) && !args.force) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `${priv} exists; --force replaces it (and orphans samples encrypted to it)`,
        { file: priv },
      );
    }
    const k = await generateVendorKeys();
    atomicWriteFile(priv, k.privatePem, 0o600);
    atomicWriteFile(pub, k.publicPem, 0o644);
    const result = { privateKey: priv, publicKey: pub };
    if (args.json) printJson(result);
    else printText(`wrote ${priv} (keep it) and ${pub} (give it to agents: liveProtection.vendorKey)`);
    return result;
  },
});

const receive = defineCommand({
  meta: { name: "receive", description: "Receive, decrypt and store sample submissions over HTTP" },
  args: {
    key: { type: "string", required: true, valueHint: "sample-key.pem", description: "vendor private key" },
    out: {
      type: "string",
      required: true,
      valueHint: "DIR",
      description: "where submissions are stored, one directory per key",
    },
    port: { type: "string", default: "8090", description: "HTTP port (0 = any free port)" },
    host: { type: "string", default: "127.0.0.1", description: "address to listen on" },
  },
  async run({ args }) {
    const key = await importVendorPrivateKey(readFileSync(args.key, "utf8"), args.key);
    const r = startReceiver({ outDir: args.out, key, host: args.host, port: port(args.port, "--port") });
    printText(JSON.stringify({ msg: "sample receiver listening", url: r.url, out: args.out }));
    await untilSignal();
    await r.stop();
  },
});

export const sxlCommand = defineCommand({
  meta: { name: "sxl", description: "Live Protection lookups (SXL over DNS): the vendor's server" },
  subCommands: { serve },
});

export const samplesCommand = defineCommand({
  meta: { name: "samples", description: "Sample submission: vendor key pair and receiver" },
  subCommands: { keygen, receive },
});
