/**
 * Reading a trust store's PEM bundle, the same for the in-process store
 * (cms.ts) and the one checked in the crypto worker (remote-trust.ts). Apart
 * from both so that reading it evaluates neither X.509 library.
 */
import { readFile } from "node:fs/promises";
import { ConfigError } from "../errors.ts";

export async function readTrustPem(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new ConfigError("CFG_TRUST_STORE", `cannot read trust store ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}
