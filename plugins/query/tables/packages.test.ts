/** apt_sources (fixture and apt-get indextargets), rpm headers, python and npm packages from fixtures. */
import { afterAll, describe, expect, test } from "bun:test";
import {
  genAptSources,
  genNpmPackages,
  genPythonPackages,
  parseAptSources,
  parseRpmHeader,
} from "./packages.ts";
import { ctxFor, fixtureRoot, has, tool } from "./testutil.ts";

const fx = fixtureRoot({
  "etc/apt/sources.list":
    "deb [arch=amd64] http://deb.example.org/debian bookworm main contrib\n# deb http://off/ x y\ndeb-src http://deb.example.org/debian bookworm main\n",
  "etc/apt/sources.list.d/extra.sources":
    "Types: deb\nURIs: https://repo.example.com/apt\nSuites: stable\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: https://off.example.com\nSuites: x\nEnabled: no\n",
  "var/lib/apt/lists/deb.example.org_debian_dists_bookworm_InRelease":
    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nLabel: Debian\nVersion: 12.5\nArchitectures: all amd64 arm64\n",
  "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA":
    "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: Python HTTP for Humans.\nAuthor: Kenneth Reitz\nLicense: Apache 2.0\n\nbody\n",
  "usr/lib/node_modules/npm/package.json": JSON.stringify({
    name: "npm",
    version: "10.2.4",
    description: "a package manager",
    license: "Artistic-2.0",
    author: { name: "GitHub Inc." },
  }),
  "usr/lib/node_modules/@scope/tool/package.json": JSON.stringify({ name: "@scope/tool", version: "1.0.0" }),
});
afterAll(fx.cleanup);

describe("apt_sources", () => {
  test("one-line and deb822 sources, named from the Release file", () => {
    expect(genAptSources(ctxFor(fx.root))).toEqual([
      {
        name: "Debian",
        source: "/etc/apt/sources.list",
        base_uri: "http://deb.example.org/debian",
        release: "bookworm",
        version: "12.5",
        maintainer: "Debian",
        components: "main contrib",
        architectures: "all amd64 arm64",
      },
      {
        name: "",
        source: "/etc/apt/sources.list.d/extra.sources",
        base_uri: "https://repo.example.com/apt",
        release: "stable",
        version: "",
        maintainer: "",
        components: "main",
        architectures: "",
      },
    ]);
  });

  test("this host's sources are the ones apt itself indexes", () => {
    if (!has("apt-get")) return;
    const targets = new Set(
      tool(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"])
        .split("\n")
        .filter(Boolean)
        .map((l) => l.replace(/\/ /, " ")),
    );
    const ours = new Set(
      genAptSources(ctxFor()).map((r) => `${String(r.base_uri).replace(/\/$/, "")} ${r.release}`),
    );
    expect(ours).toEqual(targets);
    expect(parseAptSources("deb http://x/ y\n", "a.list")).toHaveLength(1);
  });
});

describe("rpm_packages", () => {
  test("header tags decode (string and int32 entries)", () => {
    const strings = Buffer.from("bash\x005.2.15\x003.el9\x00");
    const entries = [
      [1000, 6, 0, 1],
      [1001, 6, 5, 1],
      [1002, 6, 12, 1],
      [1009, 4, 20, 1],
    ];
    const data = Buffer.concat([strings, Buffer.alloc(20 - strings.length), Buffer.from([0, 0, 0x1f, 0x40])]);
    const head = Buffer.alloc(8 + entries.length * 16);
    head.writeUInt32BE(entries.length, 0);
    head.writeUInt32BE(data.length, 4);
    for (const [i, e] of entries.entries())
      for (const [j, v] of e.entries()) head.writeUInt32BE(v, 8 + i * 16 + j * 4);
    const h = parseRpmHeader(Buffer.concat([head, data]));
    expect([h.get(1000), h.get(1001), h.get(1002), h.get(1009)]).toEqual(["bash", "5.2.15", "3.el9", 8000]);
    expect(parseRpmHeader(Buffer.from([0, 0, 0, 9, 0, 0, 0, 0])).size).toBe(0);
  });
});

describe("python_packages and npm_packages", () => {
  test("dist-info METADATA", () => {
    expect(genPythonPackages(ctxFor(fx.root))).toEqual([
      {
        name: "requests",
        version: "2.31.0",
        summary: "Python HTTP for Humans.",
        author: "Kenneth Reitz",
        license: "Apache 2.0",
        path: "/usr/lib/python3/dist-packages/requests-2.31.0.dist-info",
        directory: "/usr/lib/python3/dist-packages",
      },
    ]);
  });

  test("global node_modules, scoped packages included", () => {
    expect(
      genNpmPackages(ctxFor(fx.root)).map((r) => `${r.name}@${r.version} ${r.author} ${r.directory}`),
    ).toEqual([
      "@scope/tool@1.0.0  /usr/lib/node_modules/@scope/tool",
      "npm@10.2.4 GitHub Inc. /usr/lib/node_modules/npm",
    ]);
  });
});
