/**
 * Writes STATE/control.token. When the file exists it is rewritten in
 * place (same inode), not replaced by a rename: a host process that may see
 * STATE (repair) has /dev/null mounted over this path in its own mount
 * namespace (core/host/state-view.ts, V2), and a rename over a mount point
 * in another namespace would lift that cover. Clients read the token only
 * after control.json appears, which is written after it, so they never see
 * it half-written.
 */
import { closeSync, constants, fchmodSync, fsyncSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { atomicWriteFile } from "../fsutil.ts";

export function writeControlToken(path: string, token: string): void {
  let fd: number;
  try {
    // O_NOFOLLOW: never write through a link planted at the token's path (the fallback replaces it).
    fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
  } catch {
    atomicWriteFile(path, `${token}\n`, 0o600);
    return;
  }
  try {
    fchmodSync(fd, 0o600);
    const bytes = Buffer.from(`${token}\n`);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, off);
    // ftruncate after the write: the file never holds less than a whole token once written.
    ftruncateSync(fd, bytes.length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
