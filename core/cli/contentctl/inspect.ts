/**
 * `contentctl inspect FILE [--trust ROOT.pem] [--json]`: shows a package's
 * manifest, signer and signingTime. With --trust it runs exactly the agent's
 * checks (openPackage); without, it checks everything but the signature and
 * says so. Exits 3 (EXIT.CONTENT) when any check fails.
 */
import { readFile } from "node:fs/promises";
import * as asn1js from "asn1js";
import { defineCommand } from "citty";
import { OID, TrustStore } from "../../crypto/cms.ts";
import { sha256Hex, sha384Hex } from "../../crypto/digest.ts";
import { pkijs, x509 } from "../../crypto/engine.ts";
import { isOutpostError, type OutpostError } from "../../errors.ts";
import type { Manifest } from "../../package/manifest.ts";
import { checkPayload, openPackage, readPackage } from "../../package/open.ts";
import { EXIT } from "../exit-codes.ts";
import { printJson, printText } from "../output.ts";

export interface SignatureSummary {
  signingTime: string | null;
  signerSubject: string | null;
  signerSha256: string | null;
  certificates: string[];
}

export interface InspectReport {
  file: string;
  size: number;
  sha384: string;
  manifest: Manifest | null;
  signature: SignatureSummary | null;
  /** true: all agent checks passed against --trust; false: a check failed; null: signature not checked. */
  verified: boolean | null;
  trust: string | null;
  error: Record<string, unknown> | null;
}

export default defineCommand({
  meta: {
    name: "inspect",
    description: "Show a content package's manifest and signer; verify it with --trust",
  },
  args: {
    file: { type: "positional", required: true, description: "Package file" },
    trust: { type: "string", description: "Trusted root certificate(s), PEM: verify as the agent does" },
    json: { type: "boolean", default: false, description: "Print the report as JSON" },
  },
  async run({ args }) {
    const report = await inspectPackage(args.file, args.trust);
    if (args.json) printJson(report);
    else printText(formatReport(report));
    // The report is printed either way; the exit code says the package was rejected (docs/cli.md).
    if (report.error) process.exitCode = EXIT.CONTENT;
    return report;
  },
});

export async function inspectPackage(
  file: string,
  trustPath?: string,
  now = new Date(),
): Promise<InspectReport> {
  const bytes = new Uint8Array(await readFile(file));
  const report: InspectReport = {
    file,
    size: bytes.length,
    sha384: sha384Hex(bytes),
    manifest: null,
    signature: null,
    verified: trustPath ? false : null,
    trust: trustPath ?? null,
    error: null,
  };
  const fail = (e: unknown): InspectReport => {
    if (!isOutpostError(e)) throw e;
    report.error = (e as OutpostError).toJSON();
    if (trustPath) report.verified = false;
    return report;
  };

  let unverified: ReturnType<typeof readPackage>;
  try {
    unverified = readPackage(bytes, { file });
  } catch (e) {
    return fail(e);
  }
  report.manifest = unverified.manifest;
  report.signature = describeSignature(unverified.signatureBytes);

  try {
    if (trustPath) {
      const pkg = await openPackage(bytes, await TrustStore.load(trustPath), { file, now });
      report.signature = {
        ...report.signature,
        signingTime: pkg.signingTime.toISOString(),
        signerSubject: pkg.signer.signerSubject,
        signerSha256: pkg.signer.signerSha256,
      };
      report.verified = true;
    } else {
      checkPayload(unverified, file);
    }
  } catch (e) {
    return fail(e);
  }
  return report;
}

/**
 * Reads signer and signingTime out of the CMS for display only — nothing
 * here is checked; `verifyDetached` is the only judge of a signature.
 */
function describeSignature(p7s: Uint8Array): SignatureSummary {
  const summary: SignatureSummary = {
    signingTime: null,
    signerSubject: null,
    signerSha256: null,
    certificates: [],
  };
  try {
    const parsed = asn1js.fromBER(p7s);
    if (parsed.offset === -1) return summary;
    const signedData = new pkijs.SignedData({
      schema: new pkijs.ContentInfo({ schema: parsed.result }).content,
    });
    const signerInfo = signedData.signerInfos[0];
    const time = signerInfo?.signedAttrs?.attributes.find((a) => a.type === OID.signingTime)?.values[0];
    if (time instanceof asn1js.UTCTime || time instanceof asn1js.GeneralizedTime) {
      summary.signingTime = time.toDate().toISOString();
    }
    for (const c of signedData.certificates ?? []) {
      if (!(c instanceof pkijs.Certificate)) continue;
      const der = new Uint8Array(c.toSchema().toBER(false));
      const cert = new x509.X509Certificate(der);
      summary.certificates.push(cert.subject);
      const sid = signerInfo?.sid;
      if (sid instanceof pkijs.IssuerAndSerialNumber && sid.serialNumber.isEqual(c.serialNumber)) {
        summary.signerSubject = cert.subject;
        summary.signerSha256 = sha256Hex(der);
      }
    }
  } catch {
    // A signature that does not even parse is reported by the checks, not here.
  }
  return summary;
}

function formatReport(r: InspectReport): string {
  const lines = [`${r.file}  (${r.size} bytes, sha384 ${r.sha384})`];
  if (r.manifest) {
    const m = r.manifest;
    lines.push(`type       ${m.type}`, `version    ${m.version}`, `created    ${m.created}`);
  }
  if (r.signature) {
    const s = r.signature;
    const note = r.verified === true ? "" : "  (unverified)";
    lines.push(`signed     ${s.signingTime ?? "?"} by ${s.signerSubject ?? "?"}${note}`);
    if (s.signerSha256) lines.push(`signer     sha256 ${s.signerSha256}`);
  }
  if (r.manifest) {
    lines.push(`files      ${r.manifest.files.length}`);
    for (const f of r.manifest.files) lines.push(`  ${String(f.size).padStart(10)}  ${f.path}`);
  }
  if (r.error) lines.push(`REJECTED   ${String(r.error.code)}: ${String(r.error.message)}`);
  else if (r.verified) lines.push(`verified   yes, against ${r.trust}`);
  else
    lines.push(
      "verified   NO: signature not checked (pass --trust ROOT.pem); layout, manifest and payload digests OK",
    );
  return `${lines.join("\n")}\n`;
}
