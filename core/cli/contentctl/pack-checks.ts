/**
 * Pack-time validation: a content type may ask `contentctl pack` to run its
 * handler's validate() over the directory before anything is signed, so a
 * vendor learns about a bad file (with its line and rule) at pack time
 * rather than from every endpoint's rejection. The entry point registers
 * the types that opt in (the core imports no handler); other types pack as
 * opaque files, as before.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ContentHandler, ContentView } from "../../handler/contract.ts";

type HandlerLoader = () => Promise<ContentHandler<unknown>>;
let checks: Record<string, HandlerLoader> = {};

export function setPackChecks(c: Record<string, HandlerLoader>): void {
  checks = c;
}

function listFiles(root: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = statSync(join(root, r));
    if (st.isDirectory()) out.push(...listFiles(root, r));
    else if (st.isFile()) out.push(r);
  }
  return out;
}

/** The directory as the handler will see the signed package's payload. */
export function directoryView(type: string, version: number, dir: string): ContentView {
  const files = listFiles(dir);
  return {
    type,
    version,
    signingTime: new Date().toISOString(),
    files,
    read: (p) => new Uint8Array(readFileSync(join(dir, p))),
    readText: (p) => readFileSync(join(dir, p), "utf8"),
  };
}

/** Runs the type's validate() when it opted in; throws the handler's error (naming file and reason). */
export async function checkBeforePack(type: string, version: number, dir: string): Promise<boolean> {
  const load = checks[type];
  if (!load) return false;
  const handler = await load();
  await handler.validate(directoryView(type, version, dir));
  return true;
}
