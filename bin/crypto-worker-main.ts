/**
 * The hidden `crypto-worker` command of both executables: `agent
 * crypto-worker` for the supervisor and the hosts (core/crypto/remote-trust.ts),
 * `contentctl crypto-worker` for the hosts `contentctl` starts to validate
 * content before it is signed (core/host/validate-offline.ts). A helper is
 * started from the executable that needs it (cryptoWorkerCommand), so each
 * must answer it. No command tree is loaded.
 */

/** Runs the worker until its stdin closes, then exits the process. `name`: how its errors begin. */
export async function cryptoWorkerMain(name: string): Promise<never> {
  (await import("../core/cli/schema-mode.ts")).interpretSchemasForOneShot(["crypto-worker"]);
  const { runCryptoWorker } = await import("../core/crypto/crypto-worker.ts");
  const { applyLandlock, setNoNewPrivs } = await import("../core/host/landlock.ts");
  // It parses bytes from the network and needs nothing else: no file, no connection, no signal to
  // another process. Where Landlock is missing it still runs (the checks are what matter).
  await runCryptoWorker(() => {
    setNoNewPrivs();
    const ll = applyLandlock({ rules: [], connectPorts: [] });
    // A thread older than the restriction keeps the file system (core/host/landlock.ts). Compiled,
    // that is a bug: no check runs, and the caller reports SIG_VERIFIER_FAILED with this line.
    // (From source, Bun's module loader started them.)
    if (ll.unrestrictedThreads && Bun.main.startsWith("/$bunfs/")) {
      console.error(
        `${name}: HND_SANDBOX_THREADS: threads started before the sandbox: ${ll.unrestrictedThreads.join(", ")}`,
      );
      process.exit(70);
    }
  });
  process.exit(0);
}
