/**
 * Policy documents are hostile until proven otherwise: they come from the
 * fleet or from a file an administrator points at. Checks, in order:
 *   X1 UTF-8 text under the size cap
 *   X2 no <!DOCTYPE> and no <!ENTITY> anywhere (entity bombs, XXE): refused
 *      before any parser sees the text
 *   X3 well-formed XML (fast-xml-parser's validator, which reports the line)
 *   X4 parses into a DOM (@xmldom/xmldom) with no errors or warnings
 * Pure: no I/O, no network — xmldom never fetches anything, and with X2
 * there is nothing to fetch.
 */
import { DOMParser } from "@xmldom/xmldom";
import { XMLValidator } from "fast-xml-parser";
import { HandlerError } from "../../core/errors.ts";

export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

export type PolicyDom = ReturnType<DOMParser["parseFromString"]>;

const refuse = (code: string, name: string, line: number | undefined, msg: string) =>
  new HandlerError(code, `${name}${line ? `:${line}` : ""}: ${msg}`, {
    file: name,
    details: line ? { line } : {},
  });

const lineAt = (text: string, index: number) => text.slice(0, index).split("\n").length;

/** X1–X3: the checks that need no DOM; `agent policy apply` runs these before storing a file. */
export function checkPolicyXml(name: string, xml: string): void {
  if (xml.length > MAX_DOCUMENT_BYTES) {
    throw refuse(
      "POL_XML_TOO_LARGE",
      name,
      undefined,
      `${xml.length} bytes exceeds ${MAX_DOCUMENT_BYTES} (X1)`,
    );
  }
  const dtd = /<!(DOCTYPE|ENTITY)\b/i.exec(xml);
  if (dtd) {
    throw refuse(
      "POL_XML_DTD",
      name,
      lineAt(xml, dtd.index),
      `<!${dtd[1]}> is not allowed in policy documents (entity expansion, external entities; X2)`,
    );
  }
  const v = XMLValidator.validate(xml);
  if (v !== true) {
    throw refuse("POL_XML_MALFORMED", name, v.err.line, `not well-formed XML: ${v.err.msg} (X3)`);
  }
}

/** X1–X4: a DOM to run XPath over. */
export function parsePolicyXml(name: string, xml: string): PolicyDom {
  checkPolicyXml(name, xml);
  // xmldom reports through onError and, for fatal errors, also throws; both carry a locator.
  const problems: { msg: string; line?: number }[] = [];
  let doc: PolicyDom | undefined;
  try {
    doc = new DOMParser({
      onError: (_level, msg, ctx) => {
        problems.push({
          msg,
          line: (ctx as { locator?: { lineNumber?: number } } | undefined)?.locator?.lineNumber,
        });
      },
    }).parseFromString(xml, "text/xml");
  } catch (e) {
    const line = (e as { locator?: { lineNumber?: number } }).locator?.lineNumber;
    if (problems.length === 0) problems.push({ msg: (e as Error).message, line });
  }
  const first = problems[0];
  if (first || !doc?.documentElement) {
    throw refuse(
      "POL_XML_MALFORMED",
      name,
      first?.line,
      `not well-formed XML: ${first?.msg.split("\n")[0] ?? "no root element"} (X4)`,
    );
  }
  return doc;
}
