/**
 * `contentctl lake serve --dir DIR [--port P] [--host H] [--token-file F]`:
 * the vendor-side data-lake receiver for tests and the demo. Prints one
 * JSON line with the ingest URL, then serves until SIGINT/SIGTERM; `lake
 * stats --dir DIR` counts what is stored.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { printJson, printText, renderFields } from "../../core/cli/output.ts";
import { ConfigError } from "../../core/errors.ts";
import { startLakeReceiver } from "./lake-receiver.ts";

function readToken(file: string | undefined): string | undefined {
  if (!file) return undefined;
  const token = readFileSync(file, "utf8").trim();
  if (token.length < 8)
    throw new ConfigError("CFG_LAKE_TOKEN", `${file}: token shorter than 8 characters`, { file });
  return token;
}

const serve = defineCommand({
  meta: { name: "serve", description: "Receive scheduled-query results (idempotent batches) into DIR" },
  args: {
    dir: { type: "string", required: true, valueHint: "DIR", description: "where batches are stored" },
    port: { type: "string", default: "0", description: "TCP port (0: any free port)" },
    host: { type: "string", default: "127.0.0.1", description: "address to listen on" },
    "token-file": { type: "string", valueHint: "FILE", description: "require this bearer token" },
  },
  async run({ args }) {
    const port = Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new ConfigError("CFG_LAKE_PORT", `--port ${args.port}: not a port number`);
    const token = readToken(args["token-file"]);
    const lake = await startLakeReceiver({
      dir: resolve(args.dir),
      port,
      host: args.host,
      ...(token ? { token } : {}),
    });
    printText(
      JSON.stringify({ msg: "lake receiver listening", url: lake.url, dir: lake.dir, pid: process.pid }),
    );
    await new Promise<void>((done) => {
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    await lake.stop();
  },
});

const stats = defineCommand({
  meta: { name: "stats", description: "Count the batches and result lines stored in DIR" },
  args: {
    dir: { type: "string", required: true, valueHint: "DIR", description: "the receiver's directory" },
    json: { type: "boolean", default: false, description: "print JSON" },
  },
  run({ args }) {
    const dir = join(resolve(args.dir), "batches");
    let batches = 0;
    let lines = 0;
    const byQuery = new Map<string, number>();
    for (const f of readdirSync(dir)) {
      if (!f.endsWith(".ndjson")) continue;
      batches++;
      for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
        if (!line) continue;
        lines++;
        const name = (JSON.parse(line) as { name?: string }).name ?? "?";
        byQuery.set(name, (byQuery.get(name) ?? 0) + 1);
      }
    }
    const result = { batches, lines, queries: Object.fromEntries([...byQuery].sort()) };
    if (args.json) printJson(result);
    else
      printText(
        renderFields([
          ["batches", batches],
          ["lines", lines],
          ["queries", byQuery.size],
        ]),
      );
    return result;
  },
});

export default defineCommand({
  meta: { name: "lake", description: "Data-lake receiver for scheduled-query results (tests and demo)" },
  subCommands: { serve, stats },
});
