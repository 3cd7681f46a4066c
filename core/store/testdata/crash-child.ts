/**
 * Child process for the SIGKILL crash test: installs one package into a
 * store. Run with OUTPOST_CRASH_POINT=<n> it dies at the n-th durable step.
 * argv: <stateDir> <package.tar> <root.pem> <nowISO>
 */
import { readFileSync } from "node:fs";
import { TrustStore } from "../../crypto/cms.ts";
import { sha384Hex } from "../../crypto/digest.ts";
import { openPackage } from "../../package/open.ts";
import { ContentStore } from "../store.ts";

const [stateDir, packageFile, rootPem, nowIso] = process.argv.slice(2);
if (!stateDir || !packageFile || !rootPem || !nowIso)
  throw new Error("usage: crash-child <state> <pkg> <root.pem> <now>");
const now = new Date(nowIso);
const bytes = new Uint8Array(readFileSync(packageFile));
const pkg = await openPackage(bytes, await TrustStore.load(rootPem), { file: packageFile, now });
const store = new ContentStore(stateDir, { now: () => now });
store.open();
store.activate(store.stage(pkg, sha384Hex(bytes)));
process.stdout.write("done\n");
