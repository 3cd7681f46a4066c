/**
 * TELEMSUP: where and how often the agent submits telemetry. The handler
 * only proves the document (document.ts, rules TS1–TS7) and hands it out;
 * it runs in the `telemetry` group — no file system, no network — because
 * it is a pure function of its content. The upload itself is the
 * supervisor's (service.ts), which also applies the config's pinned
 * server allow-list (TS8) and the `telemetry.enabled` switch.
 */
import { HandlerError } from "../../core/errors.ts";
import { type ContentView, defineParsedHandler } from "../../core/handler/contract.ts";
import { checkTelemsup, TELEMSUP_FILE, type TelemsupDocument } from "./document.ts";
import { parsedManifest } from "./manifest.ts" with { type: "macro" };

interface TelemsupLive {
  version: number;
  signingTime: string;
  doc: TelemsupDocument;
}

function parse(view: ContentView): TelemsupDocument {
  if (!view.files.includes(TELEMSUP_FILE)) {
    throw new HandlerError("HND_TELEMSUP_INVALID", `TELEMSUP v${view.version}: ${TELEMSUP_FILE} missing`, {
      file: TELEMSUP_FILE,
      details: { reason: "missing-file" },
    });
  }
  const r = checkTelemsup(view.readText(TELEMSUP_FILE));
  if (!r.ok) {
    throw new HandlerError(
      "HND_TELEMSUP_INVALID",
      `TELEMSUP v${view.version}: ${TELEMSUP_FILE}: ${r.reason}`,
      {
        file: TELEMSUP_FILE,
        details: { reason: r.reason },
      },
    );
  }
  return r.doc;
}

export const telemsupHandler = defineParsedHandler<TelemsupLive>({
  manifest: parsedManifest(),

  validate(view) {
    parse(view);
  },

  load(view, caps) {
    const doc = parse(view);
    caps.log.info("telemetry settings loaded", {
      version: view.version,
      server: doc.server,
      interval: doc.interval,
    });
    return { version: view.version, signingTime: view.signingTime, doc };
  },

  status(live) {
    return {
      server: live.doc.server,
      port: live.doc.port,
      verb: live.doc.verb,
      intervalSeconds: live.doc.interval,
      headers: live.doc.additionalHeaders.length,
    };
  },

  call(live, method) {
    if (method === "settings") return { version: live.version, signingTime: live.signingTime, doc: live.doc };
    throw new HandlerError("HND_NO_METHOD", `TELEMSUP has no method ${method} (try: settings)`);
  },
});

export default telemsupHandler;
