/**
 * Rule payload encryption: AES-256-GCM under a content key the agent is
 * provisioned with, identified by a key id so keys can rotate.
 *
 * Encryption gives confidentiality only — detection logic is not handed to
 * whoever can read the disk or the repository. Integrity and origin come
 * from the package signature (every payload file is covered by the signed
 * manifest). The GCM tag and the associated data still make a wrong key, a
 * damaged file or a ciphertext moved to another name fail cleanly, with an
 * error naming the file, instead of feeding garbage to the interpreter.
 *
 * Envelope (one per rule file, `*.lua.enc`):
 *
 *   "OLUA" | version 0x01 | keyIdLen (1) | keyId (ASCII) | nonce (12) | ciphertext | tag (16)
 *
 * Associated data: every header byte up to and including the nonce, then
 * UTF-8 `<content type> NUL <payload path>`.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { HandlerError } from "../../../core/errors.ts";
import { nodeCrypto } from "../../../core/lazy-builtins.ts";
import { lazySchema } from "../../../core/schema/lazy-schema.ts";
import { z } from "../../../core/schema/zod.ts";

const MAGIC = new Uint8Array([0x4f, 0x4c, 0x55, 0x41]); // "OLUA"
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

// AES-GCM from node:crypto, required when a rule file is encrypted (core/lazy-builtins.ts).

const randomBytes = (n: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(n)));

export const KeyringSchema = lazySchema(() =>
  z.strictObject({
    schema: z.literal(1),
    keys: z
      .array(
        z.strictObject({
          id: z.string().check(z.regex(KEY_ID_RE, "key id must be 1-64 of [A-Za-z0-9._-]")),
          /** 32 bytes, base64. */
          key: z
            .string()
            .check(z.refine((k) => Buffer.from(k, "base64").length === 32, "key must be 32 bytes of base64")),
          created: z.optional(z.string()),
        }),
      )
      .check(z.minLength(1)),
  }),
);
export type KeyringFile = z.infer<typeof KeyringSchema>;

/** Content keys by id. */
export class Keyring {
  private constructor(private readonly keys: Map<string, Uint8Array>) {}

  static parse(json: unknown, file: string): Keyring {
    const r = KeyringSchema.safeParse(json);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new HandlerError(
        "HND_RULES_KEYRING_INVALID",
        `${file}: ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid keyring"}`,
        { file },
      );
    }
    const ids = new Set<string>();
    for (const k of r.data.keys) {
      if (ids.has(k.id))
        throw new HandlerError("HND_RULES_KEYRING_INVALID", `${file}: key id ${k.id} appears twice`, {
          file,
        });
      ids.add(k.id);
    }
    return new Keyring(new Map(r.data.keys.map((k) => [k.id, new Uint8Array(Buffer.from(k.key, "base64"))])));
  }

  /**
   * Reads a keyring file. It holds secrets, so one readable by every user
   * on the host is refused rather than used.
   */
  static load(file: string): Keyring {
    if (!existsSync(file)) {
      throw new HandlerError("HND_RULES_KEYRING_MISSING", `${file}: no content keyring provisioned`, {
        file,
      });
    }
    const st = statSync(file);
    if (st.mode & 0o004) {
      throw new HandlerError(
        "HND_RULES_KEYRING_MODE",
        `${file}: keyring is readable by all users (mode ${(st.mode & 0o777).toString(8)}); chmod 600`,
        { file },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new HandlerError(
        "HND_RULES_KEYRING_INVALID",
        `${file}: not valid JSON (${(e as Error).message})`,
        {
          file,
        },
      );
    }
    return Keyring.parse(json, file);
  }

  get(id: string): Uint8Array | undefined {
    return this.keys.get(id);
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }
}

/** A new keyring file body holding one fresh random key. */
export function newKeyring(id: string, now = new Date()): KeyringFile {
  if (!KEY_ID_RE.test(id))
    throw new HandlerError("HND_RULES_KEY_ID", `key id ${JSON.stringify(id)} is not valid`);
  return { schema: 1, keys: [{ id, key: randomBytes(32).toString("base64"), created: now.toISOString() }] };
}

function associatedData(header: Uint8Array, contentType: string, path: string): Uint8Array {
  const tail = new TextEncoder().encode(`${contentType}\0${path}`);
  const aad = new Uint8Array(header.length + tail.length);
  aad.set(header);
  aad.set(tail, header.length);
  return aad;
}

export function encryptRule(
  plaintext: Uint8Array,
  key: { id: string; key: Uint8Array },
  bind: { contentType: string; path: string },
): Uint8Array {
  const id = new TextEncoder().encode(key.id);
  const nonce = randomBytes(NONCE_BYTES);
  const header = new Uint8Array(MAGIC.length + 2 + id.length + NONCE_BYTES);
  header.set(MAGIC);
  header[4] = VERSION;
  header[5] = id.length;
  header.set(id, 6);
  header.set(nonce, 6 + id.length);
  const cipher = nodeCrypto().createCipheriv("aes-256-gcm", key.key, nonce);
  cipher.setAAD(associatedData(header, bind.contentType, bind.path));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

/** The key id an envelope was sealed with, checking only its framing (no key needed). */
export function envelopeKeyId(data: Uint8Array, file: string): string {
  const bad = (why: string) =>
    new HandlerError("HND_RULES_ENVELOPE_INVALID", `${file}: not an encrypted rule file (${why})`, { file });
  if (data.length < 6 || !MAGIC.every((b, i) => data[i] === b)) throw bad("bad magic");
  if (data[4] !== VERSION) throw bad(`unsupported version ${data[4]}`);
  const idLen = data[5] ?? 0;
  if (idLen === 0 || data.length < 6 + idLen + NONCE_BYTES + TAG_BYTES) throw bad("truncated");
  const id = new TextDecoder().decode(data.subarray(6, 6 + idLen));
  if (!KEY_ID_RE.test(id)) throw bad("bad key id");
  return id;
}

export function decryptRule(
  data: Uint8Array,
  keyring: Keyring,
  bind: { contentType: string; path: string },
): Uint8Array {
  const file = bind.path;
  const id = envelopeKeyId(data, file);
  const key = keyring.get(id);
  if (!key) {
    throw new HandlerError(
      "HND_RULES_KEY_UNKNOWN",
      `${file}: sealed with content key ${id}, which is not provisioned (have: ${keyring.ids().join(", ")})`,
      { file },
    );
  }
  const headerLen = 6 + id.length + NONCE_BYTES;
  const header = data.subarray(0, headerLen);
  const nonce = data.subarray(6 + id.length, headerLen);
  const body = data.subarray(headerLen, data.length - TAG_BYTES);
  const tag = data.subarray(data.length - TAG_BYTES);
  try {
    const decipher = nodeCrypto().createDecipheriv("aes-256-gcm", key, nonce);
    decipher.setAAD(associatedData(header, bind.contentType, bind.path));
    decipher.setAuthTag(tag);
    return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]));
  } catch {
    throw new HandlerError(
      "HND_RULES_DECRYPT_FAILED",
      `${file}: authentication failed: the ciphertext was altered, moved from another file, or sealed with another key ${id}`,
      { file },
    );
  }
}
