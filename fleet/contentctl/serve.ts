/**
 * `contentctl serve --repo REPO --port P [--host 127.0.0.1]`: the reference
 * static server for a repository folder (nginx serves it equally well).
 * Prints one JSON line with the URL on stdout (so scripts can use --port 0)
 * and runs until SIGINT or SIGTERM.
 */
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { ConfigError } from "../../core/errors.ts";
import { log } from "../../core/log.ts";
import { serveRepo } from "../../core/repo/serve.ts";
import { writeStdout } from "../../core/stdio.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve a repository folder over HTTP (GET/HEAD, ETag, 304)" },
  args: {
    repo: { type: "string", required: true, description: "Repository folder" },
    port: { type: "string", required: true, description: "TCP port (0 picks a free one)" },
    host: { type: "string", default: "127.0.0.1", description: "Address to listen on" },
    release: {
      type: "string",
      valueHint: "CONFIG",
      description:
        "Release config: also serve POST /fleet/heartbeat and GET /console, and run the release scheduler (docs/rollout.md)",
    },
    db: {
      type: "string",
      valueHint: "URL",
      description:
        "With --release: fleet database, postgres://user@host:port/db for replicas sharing one (default: STATE/fleet.db, SQLite)",
    },
  },
  async run({ args }) {
    const port = /^[0-9]{1,5}$/.test(args.port) ? Number(args.port) : Number.NaN;
    if (!(port >= 0 && port <= 65535)) {
      throw new ConfigError(
        "CFG_INVALID_ARGUMENT",
        `--port must be 0..65535, got ${JSON.stringify(args.port)}`,
      );
    }
    if (args.release)
      return serveWithRelease(args.release, { repo: args.repo, port, host: args.host, db: args.db });
    if (args.db)
      throw new ConfigError("CFG_INVALID_ARGUMENT", "--db needs --release (it holds release state)");
    const server = serveRepo({ repo: args.repo, port, hostname: args.host });
    const url = server.url.href;
    writeStdout(
      `${JSON.stringify({ msg: "serving repository", url, repo: args.repo, port: server.port })}\n`,
    );
    log.child({ component: "repo-server" }).info("serving repository", { url, repo: args.repo });
    const signal = await untilSignal();
    await server.stop(true);
    log.child({ component: "repo-server" }).info("stopped", { signal });
    return { url, signal };
  },
});

/** Repository + fleet endpoint + console + scheduler; the repo folder must be the release config's. */
async function serveWithRelease(
  file: string,
  opts: { repo: string; port: number; host: string; db: string | undefined },
) {
  const { loadReleaseConfig } = await import("../config.ts");
  const { serveRelease } = await import("../server.ts");
  const config = loadReleaseConfig(file);
  if (resolve(opts.repo) !== config.paths.repo) {
    throw new ConfigError(
      "CFG_INVALID_ARGUMENT",
      `--repo ${opts.repo} is not the release config's repository ${config.paths.repo}`,
      { file },
    );
  }
  const server = await serveRelease({ config, port: opts.port, hostname: opts.host, db: opts.db });
  const url = server.url.href;
  writeStdout(
    `${JSON.stringify({ msg: "serving repository", url, repo: opts.repo, port: server.port, fleet: `${url}fleet/heartbeat`, console: `${url}console` })}\n`,
  );
  log.child({ component: "repo-server" }).info("serving repository with release console", { url });
  const signal = await untilSignal();
  await server.stop();
  log.child({ component: "repo-server" }).info("stopped", { signal });
  return { url, signal };
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise<NodeJS.Signals>((resolve) => {
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
}
