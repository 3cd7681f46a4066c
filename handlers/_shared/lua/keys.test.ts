import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newKeyring } from "./crypto.ts";
import { installKeyring, keyringPath, loadKeyring } from "./keys.ts";

const root = process.getuid?.() === 0;

test.skipIf(!root)(
  "install-key under umask 077: 0640 to the agent user's group where the host drops to it, 0600 where it runs as root",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "outpost-keys-"));
    const source = join(dir, "ck.json");
    writeFileSync(source, JSON.stringify(newKeyring("k1")), { mode: 0o600 });
    const previous = process.umask(0o077); // the systemd unit's UMask, or an operator's
    try {
      installKeyring(join(dir, "state"), source, { user: "nobody" });
    } finally {
      process.umask(previous);
    }
    try {
      const mode = (group: string) => statSync(keyringPath(join(dir, "state", "hosts", group))).mode & 0o777;
      expect([mode("behavior"), mode("appfeed"), mode("repair")]).toEqual([0o640, 0o640, 0o600]);
      expect(loadKeyring(join(dir, "state", "hosts", "behavior"))).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
