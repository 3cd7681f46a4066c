/**
 * The one seam between the release server and telemetry: a store in the
 * release state folder and the app that serves it (routes.ts).
 */
import { join } from "node:path";
import { isTelemetryPath, telemetryApp } from "./routes.ts";
import { TelemetryStore } from "./store.ts";

export function telemetryReceiver(
  stateDir: string,
  tenants: Record<string, { tokenSha256: string }>,
  now: () => Date,
) {
  const store = new TelemetryStore(join(stateDir, "telemetry.sqlite"));
  const app = telemetryApp({ store, tenants, now });
  return {
    store,
    handles: isTelemetryPath,
    fetch: (req: Request) => app.fetch(req),
    close: () => store.close(),
  };
}
