/**
 * ProductRulesFeed: the product's own Lua library — shared functions the
 * Behavior rules call (`product.<module>.<function>`). Same package format,
 * encryption and interpreter as Behavior; it lives in the same host group
 * (`behavior`) and is loaded into Behavior's Lua state before any rule.
 *
 * This handler decrypts and proves the library on its own (a scratch
 * sandbox), then publishes the module sources through the group's library
 * exchange (handlers/_shared/lua/exchange.ts); Behavior rebuilds its state with
 * them. Nothing live crosses between the two handlers.
 */

import { HandlerError } from "../../core/errors.ts";
import { defineParsedHandler } from "../../core/handler/contract.ts";
import { productLibraries } from "../_shared/lua/exchange.ts";
import { type LibraryModules, openRulesPackage, validateRulesPackage } from "../_shared/lua/format.ts";
import { loadKeyring } from "../_shared/lua/keys.ts";
import { type LibraryExports, probeLibrary } from "../_shared/lua/library.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

interface ProductLive {
  library: LibraryModules;
  exports: LibraryExports[];
  signingTime: string;
  withdraw: () => void;
}

export const productRulesFeedHandler = defineParsedHandler<ProductLive>({
  manifest: parsedManifest(),

  validate(view) {
    validateRulesPackage(view);
  },

  async load(view, caps) {
    const { manifest, rules } = openRulesPackage(view, loadKeyring(caps.workDir));
    const library: LibraryModules = { version: view.version, modules: rules, limits: manifest.limits };
    const exports = await probeLibrary(library);
    const withdraw = productLibraries.publish(caps.workDir, library);
    caps.log.info("product library published", { version: view.version, modules: rules.length });
    return { library, exports, signingTime: view.signingTime, withdraw };
  },

  unload(live) {
    live.withdraw();
  },

  status(live) {
    return {
      modules: live.library.modules.length,
      functions: live.exports.reduce((n, m) => n + m.functions.length, 0),
      exports: live.exports.map((m) => `${m.module}(${m.functions.length})`).join(" "),
    };
  },

  call(live, method) {
    if (method === "functions") return { version: live.library.version, modules: live.exports };
    throw new HandlerError("HND_NO_METHOD", `ProductRulesFeed has no method ${method} (try: functions)`);
  },
});
