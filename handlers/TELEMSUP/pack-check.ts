/** `contentctl pack --type TELEMSUP`: telemsup.json is checked (TS1–TS7) before anything is signed. */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { checkTelemsup, TELEMSUP_FILE } from "./document.ts";

export function checkTelemsupSources(dir: string): void {
  const file = join(dir, TELEMSUP_FILE);
  if (!existsSync(file)) throw new HandlerError("HND_TELEMSUP_INVALID", `${file}: missing`, { file });
  const r = checkTelemsup(readFileSync(file, "utf8"));
  if (!r.ok)
    throw new HandlerError("HND_TELEMSUP_INVALID", `${file}: ${r.reason}`, {
      file,
      details: { reason: r.reason },
    });
}
