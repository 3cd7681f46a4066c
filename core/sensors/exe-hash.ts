/**
 * SHA-256 of an executable through an open fd (the exact file the process
 * runs, even if it was replaced or deleted since), cached by device, inode,
 * mtime, ctime and size so each binary is read once however often it runs.
 */
import { closeSync, fstatSync, readSync } from "node:fs";

export class ExeHasher {
  private readonly cache = new Map<string, string>();
  readonly stats = { hashed: 0, hits: 0, tooLarge: 0, errors: 0 };

  constructor(
    private readonly maxBytes = 64 * 1024 * 1024,
    private readonly maxEntries = 20_000,
  ) {}

  /** Hashes and closes `fd`; null when it is too large or unreadable. */
  hashAndClose(fd: number): string | null {
    try {
      const st = fstatSync(fd);
      const key = `${st.dev}:${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}`;
      const hit = this.cache.get(key);
      if (hit) {
        this.stats.hits++;
        return hit;
      }
      if (st.size > this.maxBytes) {
        this.stats.tooLarge++;
        return null;
      }
      const h = new Bun.CryptoHasher("sha256");
      const buf = new Uint8Array(1 << 20);
      let pos = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        h.update(buf.subarray(0, n));
        pos += n;
      }
      const digest = h.digest("hex");
      if (this.cache.size >= this.maxEntries) this.cache.clear();
      this.cache.set(key, digest);
      this.stats.hashed++;
      return digest;
    } catch {
      this.stats.errors++;
      return null;
    } finally {
      try {
        closeSync(fd);
      } catch {}
    }
  }
}
