/** systemd_units: parsers over systemctl's output, the D-Bus path escaping, and no systemd → no rows. */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { busPath, genSystemdUnits, parseListUnits, parseShow } from "./systemd.ts";
import { ctxFor } from "./testutil.ts";

describe("systemd_units", () => {
  test("list-units and show output", () => {
    expect(
      parseListUnits(
        "ssh.service loaded active running OpenBSD Secure Shell server\n● foo.service not-found inactive dead foo.service\n",
      ),
    ).toEqual([
      {
        id: "ssh.service",
        load: "loaded",
        active: "active",
        sub: "running",
        description: "OpenBSD Secure Shell server",
      },
      { id: "foo.service", load: "not-found", active: "inactive", sub: "dead", description: "foo.service" },
    ]);
    const shown = parseShow(
      "Id=ssh.service\nFragmentPath=/lib/systemd/system/ssh.service\nUser=\n\nId=x.mount\nFollowing=\n",
    );
    expect(shown.get("ssh.service")?.get("FragmentPath")).toBe("/lib/systemd/system/ssh.service");
    expect([...shown.keys()]).toEqual(["ssh.service", "x.mount"]);
  });

  test("object paths use sd-bus label escaping", () => {
    expect(busPath("ssh.service")).toBe("/org/freedesktop/systemd1/unit/ssh_2eservice");
    expect(busPath("systemd-journald.service")).toBe(
      "/org/freedesktop/systemd1/unit/systemd_2djournald_2eservice",
    );
  });

  test("without a running systemd: no rows, no error", () => {
    if (existsSync("/run/systemd/system")) return;
    expect(genSystemdUnits(ctxFor())).toEqual([]);
  });
});
