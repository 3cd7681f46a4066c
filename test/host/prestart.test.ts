/**
 * Starting host processes ahead of their content (HostManager.prestart,
 * core/agent/startup-load.ts) and reading content while its host boots
 * (HostManager.validate, ContentLoader.readAhead): what makes `agent scan`
 * offline and the agent's own start-up wait for one host boot instead of
 * for the sum of every step. Real host processes, except where a launch
 * that fails is what is tested.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../core/config.ts";
import { HandlerError } from "../../core/errors.ts";
import { type ContentView, viewOverBytes } from "../../core/handler/contract.ts";
import { READ_AHEAD_MAX } from "../../core/host/content-loader.ts";
import { HostManager } from "../../core/host/manager.ts";
import { log } from "../../core/log.ts";
import { hostTestRegistry } from "./handlers.ts";

const dirs: string[] = [];
const managers: HostManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.unloadAll()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function manager(): { m: HostManager; events: string[] } {
  const stateDir = mkdtempSync(join(tmpdir(), "outpost-prestart-"));
  dirs.push(stateDir);
  const events: string[] = [];
  const m = new HostManager({
    registry: hostTestRegistry(),
    log,
    config: parseConfig({ stateDir, hosts: { heartbeatSeconds: 0 } }).hosts,
    stateDir,
    emit: (type) => events.push(type),
    onContentFailure: async () => null,
  });
  managers.push(m);
  return { m, events };
}

const crashy = (m: HostManager) => m.hosts().find((h) => h.group === "crashy")!;

/** A Crashy payload whose reads record the host's state at the moment each file is read. */
function recordingView(m: HostManager, files: Record<string, Uint8Array>) {
  const seen: { path: string; hostState: string; pid: number | null }[] = [];
  const read = (path: string) => {
    const h = crashy(m);
    seen.push({ path, hostState: h.state, pid: h.pid ?? null });
    const data = files[path];
    if (!data) throw new Error(`${path}: not in the payload`);
    return data;
  };
  const view: ContentView = {
    ...viewOverBytes({
      type: "Crashy",
      version: 1,
      signingTime: new Date().toISOString(),
      files: Object.keys(files),
      read,
      readText: (p) => new TextDecoder().decode(read(p)),
    }),
    // As the store's view: sizes come from the signed manifest, without reading the file.
    size: (path) => files[path]?.byteLength ?? 0,
  };
  return { view, seen };
}

describe("reading content while its host starts", () => {
  test("validate reads and checks the files while the host boots, and the host then gets them", async () => {
    const { m, events } = manager();
    const { view, seen } = recordingView(m, { "data.txt": new TextEncoder().encode("good v1") });
    expect(crashy(m).state).toBe("stopped");
    await m.validate("Crashy", view);
    // Read once, with the process spawned and not yet up — before, the read waited for "running".
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ path: "data.txt", hostState: "starting" });
    expect(seen[0]!.pid).toBeGreaterThan(0);
    expect(crashy(m)).toMatchObject({ state: "running", pid: seen[0]!.pid });
    // What the host validated is what was read: it loads and answers with it.
    await m.commit(await m.prepare("Crashy", view));
    expect(await m.call("Crashy", "read", {})).toMatchObject({ text: "good v1", pid: seen[0]!.pid });
    expect(events.filter((e) => e === "host-started")).toHaveLength(1);
  });

  test("a payload over the read-ahead budget is read as it is staged, one file at a time", async () => {
    const { m } = manager();
    const big = new Uint8Array(READ_AHEAD_MAX); // the budget, whole: the first file fits, the second does not
    const { view, seen } = recordingView(m, {
      "data.txt": new TextEncoder().encode("good v1"),
      "big.bin": big,
      "more.bin": new Uint8Array(16),
    });
    await m.validate("Crashy", view);
    expect(seen.map((s) => [s.path, s.hostState])).toEqual([
      ["data.txt", "starting"],
      ["big.bin", "running"],
      ["more.bin", "running"],
    ]);
  });

  test("a file that fails its check fails the validation, and the host that was started for it stays usable", async () => {
    const { m } = manager();
    const { view } = recordingView(m, { "data.txt": new TextEncoder().encode("good v1") });
    const broken: ContentView = {
      ...view,
      read: () => {
        throw new HandlerError("STORE_FILE_MISMATCH", "data.txt: SHA-384 does not match the manifest");
      },
    };
    await expect(m.validate("Crashy", broken)).rejects.toMatchObject({ code: "STORE_FILE_MISMATCH" });
    await m.validate("Crashy", view);
    expect(crashy(m).state).toBe("running");
  });
});

describe("prestart", () => {
  test("starts the type's host at once; the content loaded next goes to that same process", async () => {
    const { m, events } = manager();
    m.prestart(["Crashy", "NoSuchType"]);
    const started = crashy(m);
    expect(started.state).toBe("starting");
    expect(started.pid).toBeGreaterThan(0);
    const { view, seen } = recordingView(m, { "data.txt": new TextEncoder().encode("good v1") });
    await m.validate("Crashy", view);
    await m.commit(await m.prepare("Crashy", view));
    expect(seen[0]!.pid).toBe(started.pid);
    expect(await m.call("Crashy", "read", {})).toMatchObject({ text: "good v1", pid: started.pid });
    expect(events.filter((e) => e === "host-started")).toHaveLength(1);
    // Once up, it is not started again.
    m.prestart(["Crashy"]);
    expect(crashy(m).pid).toBe(started.pid);
  });

  test("a prestart that fails is the answer of the first load that needed it — not a second launch", async () => {
    const { m, events } = manager();
    let launches = 0;
    // The launch itself is what fails (no executable, no namespace): nothing of a process exists.
    (m as unknown as { launch: () => Promise<never> }).launch = async () => {
      launches++;
      throw new HandlerError("HND_HOST_SPAWN_FAILED", "host crashy: no such executable");
    };
    m.prestart(["Crashy"]);
    const { view } = recordingView(m, { "data.txt": new TextEncoder().encode("good v1") });
    await expect(m.validate("Crashy", view)).rejects.toMatchObject({ code: "HND_HOST_SPAWN_FAILED" });
    expect(launches).toBe(1);
    expect(events.filter((e) => e === "host-crashed")).toHaveLength(1);
    // The next request starts it again, as it would have without a prestart.
    await expect(m.validate("Crashy", view)).rejects.toMatchObject({ code: "HND_HOST_SPAWN_FAILED" });
    expect(launches).toBe(2);
  });

  test("a failed prestart no request asked for is forgotten once the host is started again", async () => {
    const { m } = manager();
    const internals = m as unknown as {
      launch?: unknown;
      groups: Map<string, { prestarted?: Promise<unknown>; proc?: unknown }>;
      start: (g: unknown) => Promise<unknown>;
      stopIdle: (g: unknown, proc: unknown, l: typeof log) => void;
    };
    internals.launch = async () => {
      throw new HandlerError("HND_HOST_SPAWN_FAILED", "host crashy: no such executable");
    };
    m.prestart(["Crashy"]);
    const g = internals.groups.get("crashy")!;
    await g.prestarted?.catch(() => {});
    // The launch works again. The crash supervisor restarts the host (the manager's own start), then
    // it is stopped after an idle period, all before any request needed it.
    delete internals.launch;
    await internals.start(g);
    internals.stopIdle(g, g.proc, log);
    expect(crashy(m).state).toBe("stopped");
    // The next load starts a host; the old prestart's failure is not its answer.
    const { view } = recordingView(m, { "data.txt": new TextEncoder().encode("good v1") });
    await m.validate("Crashy", view);
    expect(crashy(m).state).toBe("running");
  });
});
