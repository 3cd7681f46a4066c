/**
 * Flags: the Flags Supplement for this agent release (format.ts). Runs in
 * the unprivileged `config` host group; the supervisor asks it for the
 * supplement's words and combines them with the Flags Service's by the
 * seed's table (core/effective/flags.ts). Features read the result through
 * `agent.effective.flags.enabled(name)`.
 */
import { HandlerError } from "../../core/errors.ts";
import { defineParsedHandler } from "../../core/handler/contract.ts";
import { VERSION } from "../../core/version.ts";
import { FLAGS_FILE, parseSupplement } from "./format.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

interface FlagsLive {
  version: number;
  flags: Record<string, "off" | "available">;
}

function read(view: { files: readonly string[]; readText(p: string): string; type: string }) {
  if (!view.files.includes(FLAGS_FILE)) {
    throw new HandlerError("FLAG_INVALID", `${view.type}: the package has no ${FLAGS_FILE}`, {
      file: FLAGS_FILE,
    });
  }
  return parseSupplement(view.readText(FLAGS_FILE), FLAGS_FILE, VERSION);
}

export const flagsHandler = defineParsedHandler<FlagsLive>({
  manifest: parsedManifest(),

  validate(view) {
    read(view);
  },

  load(view, caps) {
    const { flags } = read(view);
    caps.log.info("flags supplement loaded", { version: view.version, flags: Object.keys(flags).length });
    return { version: view.version, flags };
  },

  status(live) {
    return {
      flags: Object.keys(live.flags).length,
      available: Object.values(live.flags).filter((w) => w === "available").length,
    };
  },

  call(live, method) {
    if (method === "supplement") return { version: live.version, flags: live.flags };
    throw new HandlerError("HND_NO_METHOD", `Flags has no method ${method} (try: supplement)`);
  },
});
