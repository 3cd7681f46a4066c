/**
 * The one seam between the release server and telemetry: a store in the
 * fleet database (shared by every replica on it), the upload app the server
 * routes `/telemetry/…` to, and the console views it mounts behind the
 * operator login (routes.ts).
 */
import type { Driver } from "../db/driver.ts";
import {
  isTelemetryUploadPath,
  TELEMETRY_CONSOLE_PATHS,
  telemetryApp,
  telemetryConsoleApp,
} from "./routes.ts";
import { TelemetryStore } from "./store.ts";

export function telemetryReceiver(
  db: Driver,
  tenants: Record<string, { tokenSha256: string }>,
  now: () => Date,
) {
  const store = new TelemetryStore(db);
  const app = telemetryApp({ store, tenants, now });
  return {
    store,
    /** Uploads only; the console views are `console` below. */
    handles: isTelemetryUploadPath,
    fetch: (req: Request) => app.fetch(req),
    console: { paths: TELEMETRY_CONSOLE_PATHS, app: telemetryConsoleApp(store) },
  };
}
