/** Browser extension tables from per-user fixture profiles. */
import { afterAll, describe, expect, test } from "bun:test";
import { genChromeExtensions, genFirefoxAddons, genOperaExtensions } from "./browsers.ts";
import { ctxFor, fixtureRoot } from "./testutil.ts";

const ID = "aapocclcgogkmnckokdopfmhonfmgoek";
const fx = fixtureRoot({
  "etc/passwd": "alice:x:1000:1000::/home/alice:/bin/bash\n",
  [`home/alice/.config/google-chrome/Default/Extensions/${ID}/0.10_0/manifest.json`]: JSON.stringify({
    name: "Slides",
    version: "0.10",
    permissions: ["storage", "tabs"],
    background: { persistent: true },
    update_url: "https://clients2.google.com/service/update2/crx",
  }),
  "home/alice/.config/google-chrome/Default/Preferences": JSON.stringify({
    profile: { name: "Person 1" },
    extensions: { settings: { [ID]: { from_webstore: true, state: 1, install_time: "13300000000000000" } } },
  }),
  "home/alice/.config/opera/Extensions/abc/1.0_0/manifest.json": JSON.stringify({
    name: "Opera ext",
    version: "1.0",
  }),
  "home/alice/.mozilla/firefox/x1.default/extensions.json": JSON.stringify({
    addons: [
      {
        id: "uBlock0@raymondhill.net",
        type: "extension",
        version: "1.55.0",
        active: true,
        visible: true,
        userDisabled: false,
        applyBackgroundUpdates: 1,
        location: "app-profile",
        path: "/home/alice/.mozilla/firefox/x1.default/extensions/uBlock0@raymondhill.net.xpi",
        sourceURI: "https://addons.mozilla.org/x.xpi",
        defaultLocale: { name: "uBlock Origin", creator: "Raymond Hill", description: "blocker" },
      },
    ],
  }),
});
afterAll(fx.cleanup);

describe("browser tables", () => {
  test("chrome_extensions joins manifest and profile preferences", () => {
    const [r, ...rest] = genChromeExtensions(ctxFor(fx.root));
    expect(rest).toEqual([]);
    expect(r).toMatchObject({
      browser_type: "chrome",
      uid: 1000,
      name: "Slides",
      profile: "Person 1",
      identifier: ID,
      referenced: 1,
      version: "0.10",
      persistent: 1,
      permissions: "storage, tabs",
      from_webstore: "true",
      state: "1",
      // WebKit epoch (µs since 1601) to Unix seconds.
      install_timestamp: 1_655_526_400,
    });
  });

  test("opera_extensions and firefox_addons", () => {
    expect(
      genOperaExtensions(ctxFor(fx.root)).map((r) => `${r.uid} ${r.identifier} ${r.name} ${r.version}`),
    ).toEqual(["1000 abc Opera ext 1.0"]);
    expect(genFirefoxAddons(ctxFor(fx.root))).toEqual([
      {
        uid: 1000,
        name: "uBlock Origin",
        identifier: "uBlock0@raymondhill.net",
        creator: "Raymond Hill",
        type: "extension",
        version: "1.55.0",
        description: "blocker",
        source_url: "https://addons.mozilla.org/x.xpi",
        visible: 1,
        active: 1,
        disabled: 0,
        autoupdate: 1,
        location: "app-profile",
        path: "/home/alice/.mozilla/firefox/x1.default/extensions/uBlock0@raymondhill.net.xpi",
      },
    ]);
  });

  test("users without browsers: no rows, no error", () => {
    expect(genChromeExtensions(ctxFor("/nonexistent-root"))).toEqual([]);
    expect(genFirefoxAddons(ctxFor("/nonexistent-root"))).toEqual([]);
  });
});
