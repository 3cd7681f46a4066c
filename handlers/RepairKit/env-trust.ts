/**
 * The trust store as rules reach it (`trust.*`): its state, a backup taken
 * only of a store that has verified the agent's own cached index, a
 * restore only over a store that is missing or unusable, and tightening
 * its owner and mode. Never a store of the rule's choosing: the path is
 * the agent's (facts.trustPath).
 */
import {
  chmodSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { HandlerError } from "../../core/errors.ts";
import { atomicWriteFile } from "../../core/fsutil.ts";
import type { EnvContext } from "./env-files.ts";
import { countCerts, pemCertificates } from "./inspect.ts";

export class EnvTrust {
  constructor(private readonly ctx: EnvContext) {}

  private get trustBackup(): string {
    return join(this.ctx.facts.stateDir, "repair", "trust-backup.pem");
  }

  trust(): Record<string, unknown> {
    const path = this.ctx.facts.trustPath;
    const out: Record<string, unknown> = {
      path,
      present: false,
      verifiesIndex: this.ctx.prepared.trustVerifies ?? false,
    };
    const backup = this.trustBackup;
    out.backup = existsSync(backup) ? { present: true, certs: countCerts(backup) } : { present: false };
    try {
      const s = lstatSync(path);
      Object.assign(out, {
        present: true,
        type: s.isFile() ? "file" : s.isSymbolicLink() ? "link" : "other",
      });
      Object.assign(out, { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid });
      const pem = pemCertificates(readFileSync(path, "utf8"));
      out.ok = pem.ok;
      out.certs = pem.certs;
      if (pem.error) out.error = pem.error;
    } catch {
      out.ok = false;
      out.error = "missing";
    }
    return out;
  }

  /** Keeps a copy of the trust store that has verified the agent's own cached index. */
  trustBackupNow(): void {
    if (!this.ctx.prepared.trustVerifies) {
      throw new HandlerError(
        "HND_REPAIR_REFUSED",
        "trust store not proven (it verified no cached index); no backup taken",
      );
    }
    mkdirSync(dirname(this.trustBackup), { recursive: true, mode: 0o700 });
    atomicWriteFile(this.trustBackup, readFileSync(this.ctx.facts.trustPath), 0o600);
  }

  /** Restores the backup, only over a trust store that is missing or unusable. */
  trustRestore(): void {
    const t = this.trust();
    if (t.ok) throw new HandlerError("HND_REPAIR_REFUSED", "the trust store is usable; not overwriting it");
    if (!existsSync(this.trustBackup))
      throw new HandlerError("HND_REPAIR_REFUSED", "no trust store backup to restore");
    const backup = pemCertificates(readFileSync(this.trustBackup, "utf8"));
    if (!backup.ok)
      throw new HandlerError("HND_REPAIR_REFUSED", `the trust store backup is unusable: ${backup.error}`);
    mkdirSync(dirname(this.ctx.facts.trustPath), { recursive: true, mode: 0o755 });
    if (t.present && t.type !== "file") rmSync(this.ctx.facts.trustPath, { force: true });
    atomicWriteFile(this.ctx.facts.trustPath, readFileSync(this.trustBackup), 0o644);
    lchownSync(this.ctx.facts.trustPath, this.ctx.facts.agentUid, this.ctx.facts.agentGid);
  }

  /** Nobody but the agent's user may change the trust store. */
  trustTighten(): void {
    const path = this.ctx.facts.trustPath;
    this.ctx.files.noLink(path, "trust.tighten");
    chmodSync(path, (statSync(path).mode & 0o777 & ~0o022) | 0o444);
    lchownSync(path, this.ctx.facts.agentUid, this.ctx.facts.agentGid);
  }
}
