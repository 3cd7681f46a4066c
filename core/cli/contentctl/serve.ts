/**
 * `contentctl serve --repo REPO --port P [--host 127.0.0.1]`: the reference
 * static server for a repository folder (nginx serves it equally well).
 * Prints one JSON line with the URL on stdout (so scripts can use --port 0)
 * and runs until SIGINT or SIGTERM.
 */
import { defineCommand } from "citty";
import { ConfigError } from "../../errors.ts";
import { log } from "../../log.ts";
import { serveRepo } from "../../repo/serve.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve a repository folder over HTTP (GET/HEAD, ETag, 304)" },
  args: {
    repo: { type: "string", required: true, description: "Repository folder" },
    port: { type: "string", required: true, description: "TCP port (0 picks a free one)" },
    host: { type: "string", default: "127.0.0.1", description: "Address to listen on" },
  },
  async run({ args }) {
    const port = /^[0-9]{1,5}$/.test(args.port) ? Number(args.port) : Number.NaN;
    if (!(port >= 0 && port <= 65535)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `--port must be 0..65535, got ${JSON.stringify(args.port)}`,
      );
    }
    const server = serveRepo({ repo: args.repo, port, hostname: args.host });
    const url = server.url.href;
    process.stdout.write(
      `${JSON.stringify({ msg: "serving repository", url, repo: args.repo, port: server.port })}\n`,
    );
    log.child({ component: "repo-server" }).info("serving repository", { url, repo: args.repo });
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const onInt = () => stop("SIGINT");
      const onTerm = () => stop("SIGTERM");
      const stop = (sig: NodeJS.Signals) => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        resolve(sig);
      };
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    });
    await server.stop(true);
    log.child({ component: "repo-server" }).info("stopped", { signal });
    return { url, signal };
  },
});
