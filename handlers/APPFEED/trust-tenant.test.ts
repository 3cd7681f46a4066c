/**
 * `agent appfeed trust-tenant` as an operator with a hardened umask runs it (077, as under the
 * systemd unit): the tenant root it places for the appfeed host is 0640 to the agent user's group,
 * so a host that drops to that user can read it (it was 0600: USERAPPFEED's tenant check failed).
 */
import "reflect-metadata";
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initKeys } from "../../core/crypto/keys.ts";
import { resolveAgentIdentity } from "../../core/host/sandbox.ts";
import { groupWorkDir } from "../_shared/lua/keys.ts";
import { TENANT_ROOT_FILE } from "../_shared/tenant/signature.ts";

const root = process.getuid?.() === 0;

test.skipIf(!root)(
  "trust-tenant under umask 077: the tenant root is 0640, root's, the agent user's group",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-trust-tenant-"));
    try {
      await initKeys(join(dir, "t"), { name: "Acme Tenant" });
      const state = join(dir, "st");
      mkdirSync(state);
      const p = Bun.spawn(
        [
          "/bin/sh",
          "-c",
          'umask 077; exec "$@"',
          "sh",
          process.execPath,
          join(import.meta.dir, "..", "..", "bin", "agent.ts"),
          "appfeed",
          "trust-tenant",
          join(dir, "t", "root.pem"),
          "--state",
          state,
          "--json",
        ],
        { stdout: "pipe", stderr: "pipe", env: { ...process.env, OUTPOST_LOG_QUIET: "1" } },
      );
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      expect(err).toBe("");
      expect(code).toBe(0);
      expect(JSON.parse(out).installed).toBe(join(groupWorkDir(state, "appfeed"), TENANT_ROOT_FILE));
      const st = statSync(JSON.parse(out).installed);
      expect(st.mode & 0o777).toBe(0o640);
      expect([st.uid, st.gid]).toEqual([0, resolveAgentIdentity("outpost").gid]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  30_000,
);
