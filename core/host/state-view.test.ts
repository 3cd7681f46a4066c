import { describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxSpec } from "./policy.ts";
import { buildLaunch, type LaunchTools } from "./sandbox.ts";
import {
  findStateViewTools,
  foldLaunch,
  hiddenViewFstab,
  hiddenViewPaths,
  prepareHiddenView,
  stateView,
} from "./state-view.ts";

const tools = { unshare: "/usr/bin/unshare", mount: "/usr/bin/mount", sh: "/usr/bin/sh" };
const spec = { fsRead: [], fsWrite: [] };
/** Writes nothing: the path prepareHiddenView would return for /s/hosts/g. */
const prepareHidden = () => "/s/hosts/.state-view/g.fstab";
/** The view of group g's host in STATE /s, for a supervisor running as `uid`. */
const viewAs = (uid: number) =>
  stateView({ spec, stateDir: "/s", workDir: "/s/hosts/g", supervisorUid: uid, tools, prepareHidden });

describe("state view: the wrapper in front of a host's launch", () => {
  test("root: one unshare creates the mount and the network namespace (one exec fewer per host start)", () => {
    const view = viewAs(0);
    const rest = [
      "/usr/bin/unshare",
      "--net",
      "--",
      "/usr/bin/setpriv",
      "--reuid=65534",
      "--",
      "agent",
      "host",
    ];
    const prefix = foldLaunch(view.prefix, rest);
    expect(prefix.slice(0, 6)).toEqual([
      "/usr/bin/unshare",
      "--net",
      "--mount",
      "--propagation",
      "private",
      "--",
    ]);
    expect(prefix.slice(6, 8)).toEqual(["/usr/bin/sh", "-c"]);
    expect(prefix.slice(-6)).toEqual([
      "outpost-state-view",
      "/s",
      "/s/hosts/g",
      "hidden",
      "/s/hosts/.state-view/g.fstab",
      "-",
    ]);
    expect(rest).toEqual(["/usr/bin/setpriv", "--reuid=65534", "--", "agent", "host"]);
    expect([...prefix, ...rest].filter((w) => w === "/usr/bin/unshare")).toHaveLength(1);
  });

  test("the same through buildLaunch's real argv: its netns wrapper is taken off, the rest kept in order", () => {
    const launchTools: LaunchTools = {
      unshare: "/usr/bin/unshare",
      setpriv: "/usr/bin/setpriv",
      prlimit: "/usr/bin/prlimit",
    };
    const l = buildLaunch({
      base: ["/opt/agent", "host", "--group", "g"],
      spec: {
        group: "g",
        runAs: "agent",
        fsRead: [],
        fsWrite: [],
        exec: false,
        net: "none",
        agent: false,
        capabilities: [],
      } satisfies SandboxSpec,
      supervisorUid: 0,
      identity: { uid: 65534, gid: 65534, user: "nobody" },
      cpuSeconds: 60,
      tools: launchTools,
    });
    expect(l.argv.slice(0, 3)).toEqual(["/usr/bin/unshare", "--net", "--"]);
    const at = l.argv.indexOf("/usr/bin/prlimit");
    expect(l.argv.slice(at, at + 4)).toEqual(["/usr/bin/prlimit", "--cpu=60:65", "--core=0", "--"]);
    const kept = l.argv.filter((_, i) => i >= 3 && (i < at || i >= at + 4));
    const view = viewAs(0);
    const prefix = foldLaunch(view.prefix, l.argv);
    // The view's unshare makes the network namespace, its shell sets the CPU limit (soft:hard).
    expect(prefix[1]).toBe("--net");
    expect(prefix.at(-1)).toBe("60:65");
    expect(l.argv).toEqual(kept);
    expect(l.argv.at(-4)).toBe("/opt/agent");
  });

  test("nothing to fold: a launch without a network namespace, or no view (not root), stays as it was", () => {
    const view = viewAs(0);
    const rest = ["/usr/bin/setpriv", "--", "agent"];
    expect(foldLaunch(view.prefix, rest)).toEqual(view.prefix);
    expect(rest).toEqual(["/usr/bin/setpriv", "--", "agent"]);
    const none = viewAs(1000);
    expect(none.prefix).toEqual([]);
    const netOnly = ["/usr/bin/unshare", "--net", "--", "agent"];
    expect(foldLaunch(none.prefix, netOnly)).toEqual([]);
    expect(netOnly).toEqual(["/usr/bin/unshare", "--net", "--", "agent"]);
  });
});

describe("state view V1: one mount(8) over an fstab the supervisor writes", () => {
  test("the fstab: the skeleton read-only over STATE, then the work dir back; paths escaped as libmount reads them", () => {
    const fstab = hiddenViewFstab(
      "/var/lib/out post",
      "/var/lib/out post/hosts/g",
      "/var/lib/out post/hosts/.state-view/g",
    );
    expect(fstab).toBe(
      "/var/lib/out\\040post/hosts/.state-view/g /var/lib/out\\040post none bind,ro,nosuid,nodev,noexec 0 0\n" +
        "/proc/self/cwd /var/lib/out\\040post/hosts/g none bind 0 0\n",
    );
    expect(hiddenViewFstab("/s", "/s/a\\b\tc", "/k").split("\n")[1]).toBe(
      "/proc/self/cwd /s/a\\134b\\011c none bind 0 0",
    );
    // A read-only view's work dir lies outside STATE: it is not under the skeleton, nothing to bind back.
    expect(hiddenViewFstab("/s", "/tmp/outpost-view-1/hosts/g", "/k").trim().split("\n")).toHaveLength(1);
    expect(hiddenViewPaths("/s/hosts/g")).toEqual({
      skeleton: "/s/hosts/.state-view/g",
      fstab: "/s/hosts/.state-view/g.fstab",
    });
  });

  const root = process.getuid?.() === 0;
  const real = findStateViewTools();
  const runnable = root && real.unshare && real.mount && real.sh;

  /** Runs `probe` as a host would run, behind the view (no setpriv: root, to show the mounts are what stops it). */
  function behindView(state: string, work: string, probe: string, prepare?: () => string, asNobody = false) {
    const view = stateView({
      spec,
      stateDir: state,
      workDir: work,
      supervisorUid: 0,
      tools: real,
      ...(prepare ? { prepareHidden: prepare } : {}),
    });
    // /proc/self/mountinfo writes the space in STATE's name as \\040.
    const host = asNobody
      ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
      : [];
    const argv = [
      ...view.prefix,
      ...host,
      "/bin/sh",
      "-c",
      probe,
      "probe",
      state,
      state.replaceAll(" ", "\\040"),
    ];
    const r = Bun.spawnSync(argv, { cwd: work });
    return { view, code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  }

  const PROBE = `
state=$1
echo "state: $(ls -A "$state" | tr '\\n' ' ')"
echo "hosts: $(ls -A "$state/hosts" | tr '\\n' ' ')"
echo "mine: $(cat mine)"
echo work > written && echo "work: writable"
touch "$state/planted" 2>/dev/null || echo "state: read-only"
echo "mounted: $(grep -F " $2 " /proc/self/mountinfo | grep -o 'ro,nosuid,nodev,noexec' | head -1)"
`;

  function makeState(name: string) {
    const dir = mkdtempSync(join(tmpdir(), name));
    const state = join(dir, "st ate");
    mkdirSync(join(state, "hosts", "g"), { recursive: true });
    mkdirSync(join(state, "hosts", "other"), { recursive: true });
    writeFileSync(join(state, "control.token"), "secret-token");
    writeFileSync(join(state, "hosts", "other", "content-keys.json"), "{}");
    writeFileSync(join(state, "hosts", "g", "mine"), "kept");
    return { dir, state, work: join(state, "hosts", "g") };
  }

  test.skipIf(!runnable)(
    "a host sees its work dir, writable, in an empty read-only STATE; the real STATE is untouched",
    () => {
      const { dir, state, work } = makeState("outpost-view-");
      try {
        const r = behindView(state, work, PROBE);
        expect(r.err).toBe("");
        expect(r.code).toBe(0);
        expect(r.view.mode).toBe("hidden");
        expect(r.view.note).toBeUndefined();
        expect(r.out).toContain("state: hosts \n");
        expect(r.out).toContain("hosts: g \n");
        expect(r.out).toContain("mine: kept\n");
        expect(r.out).toContain("work: writable\n");
        expect(r.out).toContain("state: read-only\n");
        expect(r.out).toContain("mounted: ro,nosuid,nodev,noexec\n");
        // What it wrote in its work dir is in the real one; nothing it did reached STATE.
        expect(readFileSync(join(work, "written"), "utf8")).toBe("work\n");
        expect(() => statSync(join(state, "planted"))).toThrow();
        expect(readFileSync(join(state, "control.token"), "utf8")).toBe("secret-token");
        // The fstab is root's, 0600, and is not rewritten for the next start.
        const { fstab } = hiddenViewPaths(work);
        expect(statSync(fstab).mode & 0o777).toBe(0o600);
        const written = statSync(fstab).mtimeMs;
        expect(prepareHiddenView(state, work)).toBe(fstab);
        expect(statSync(fstab).mtimeMs).toBe(written);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    20_000,
  );

  test.skipIf(!runnable)(
    "without its fstab (STATE/hosts not writable) the same view is made with a tmpfs, and status says so",
    () => {
      const { dir, state, work } = makeState("outpost-view-fallback-");
      try {
        const r = behindView(state, work, PROBE, () => {
          throw new Error("EROFS: read-only file system, mkdir");
        });
        expect(r.code).toBe(0);
        expect(r.view.note).toContain("the view is made with a tmpfs instead");
        expect(r.out).toContain("state: hosts \n");
        expect(r.out).toContain("hosts: g \n");
        expect(r.out).toContain("work: writable\n");
        expect(r.out).toContain("state: read-only\n");
        expect(readFileSync(join(state, "control.token"), "utf8")).toBe("secret-token");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    20_000,
  );
  test("the skeleton is 0711 down to the work dir and the fstab 0600, whatever the supervisor's umask", () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-view-umask-"));
    const previous = process.umask(0o077); // the systemd unit's UMask (core/install/unit.ts)
    try {
      const work = join(dir, "state", "hosts", "g");
      mkdirSync(work, { recursive: true });
      const fstab = prepareHiddenView(join(dir, "state"), work);
      const { skeleton } = hiddenViewPaths(work);
      const mode = (p: string) => statSync(p).mode & 0o777;
      expect([skeleton, join(skeleton, "hosts"), join(skeleton, "hosts", "g")].map(mode)).toEqual([
        0o711, 0o711, 0o711,
      ]);
      expect(mode(fstab)).toBe(0o600);
      expect(mode(join(dir, "state", "hosts", ".state-view"))).toBe(0o700);
    } finally {
      process.umask(previous);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * As the systemd unit starts it: umask 077, and a host that is not root. Both ways of making the
   * view must leave it a way through STATE to its work dir (it chdirs there by path at init).
   */
  for (const how of ["fstab", "tmpfs"] as const) {
    test.skipIf(!runnable || !Bun.which("setpriv"))(
      `an unprivileged host reaches its work dir under umask 077 (${how})`,
      () => {
        const { dir, state, work } = makeState("outpost-view-nobody-");
        const previous = process.umask(0o077);
        try {
          chmodSync(dir, 0o711);
          chmodSync(work, 0o777);
          const r = behindView(
            state,
            work,
            `cd "$1/hosts/g" && echo "reached: $(pwd)" && echo x > by-nobody && echo "wrote"`,
            how === "tmpfs"
              ? () => {
                  throw new Error("EROFS: read-only file system");
                }
              : undefined,
            true,
          );
          expect(r.err).toBe("");
          expect(r.out).toBe(`reached: ${work}\nwrote\n`);
          expect(r.code).toBe(0);
          expect(statSync(join(work, "by-nobody")).uid).toBe(65534);
        } finally {
          process.umask(previous);
          rmSync(dir, { recursive: true, force: true });
        }
      },
      20_000,
    );
  }
});
