/**
 * Content digests. Hashing dominates verification of large packages, so
 * everything goes through Bun's native hasher rather than a JS or WebCrypto
 * round trip.
 */
export type DigestAlgorithm = "sha256" | "sha384";

export function sha384(data: Uint8Array): Uint8Array {
  return new Uint8Array(Bun.CryptoHasher.hash("sha384", data));
}

export function sha384Hex(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha384").update(data).digest("hex");
}

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(Bun.CryptoHasher.hash("sha256", data));
}

export function sha256Hex(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** Incremental hashing for data that arrives in chunks (downloads, file streams). */
export class IncrementalDigest {
  private readonly hasher: Bun.CryptoHasher;
  private bytes = 0;

  constructor(readonly algorithm: DigestAlgorithm = "sha384") {
    this.hasher = new Bun.CryptoHasher(algorithm);
  }

  update(chunk: Uint8Array): this {
    this.hasher.update(chunk);
    this.bytes += chunk.byteLength;
    return this;
  }

  /** Number of bytes hashed so far, so callers can enforce size limits while streaming. */
  get length(): number {
    return this.bytes;
  }

  /** Finishes the hash; the instance cannot be updated afterwards. */
  digestHex(): string {
    return this.hasher.digest("hex");
  }

  digest(): Uint8Array {
    return new Uint8Array(this.hasher.digest());
  }
}

/** Hashes a file by streaming it, without holding it in memory. */
export async function digestFileHex(path: string, algorithm: DigestAlgorithm = "sha384"): Promise<string> {
  const digest = new IncrementalDigest(algorithm);
  for await (const chunk of Bun.file(path).stream()) digest.update(chunk);
  return digest.digestHex();
}

/** Byte equality for digests (public values: no constant-time requirement). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
