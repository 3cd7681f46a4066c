/**
 * The remapper: rule files × policy documents → one overlay per rule file,
 * or that file's failure. Pure (no I/O); runs in the `config` host group and
 * in the benchmark alike. A file is all-or-nothing: the first rule that
 * fails (query matched nothing, conversion refused, document missing or
 * malformed) makes the whole file fail, and the other files carry on.
 */
import type { Node as XmlNode } from "@xmldom/xmldom";
import type { OverlayValue } from "../../core/effective/resolver.ts";
import { isOutpostError } from "../../core/errors.ts";
import { ConversionError, convert } from "./convert.ts";
import type { ParsedRuleFile, Rule } from "./format.ts";

export { parseRuleFile } from "./format.ts";

import { type PolicyDom, parsePolicyXml } from "./xml.ts";
import { indexDocumentOrder, selectXPath } from "./xpath.ts";

export interface PolicyDocumentInput {
  name: string;
  version?: number;
  xml: string;
}

export interface FileError {
  code: string;
  message: string;
  rule?: string;
  document?: string;
  line?: number;
}

export type FileResult =
  | { file: string; ok: true; values: OverlayValue[] }
  | { file: string; ok: false; error: FileError };

type Matched = { texts: string[]; line?: number };

function evaluate(rule: Rule, dom: PolicyDom): Matched {
  const r = selectXPath(rule.select, dom);
  if (Array.isArray(r)) {
    const nodes = r as (XmlNode & { lineNumber?: number; value?: string })[];
    return {
      texts: nodes.map((n) => (n.nodeType === 2 ? (n.value ?? "") : (n.textContent ?? ""))),
      line: nodes[0]?.lineNumber,
    };
  }
  if (typeof r === "string") return { texts: r === "" ? [] : [r] };
  if (typeof r === "number") return { texts: Number.isNaN(r) ? [] : [String(r)] };
  if (typeof r === "boolean") return { texts: [String(r)] };
  return { texts: r ? [String(r)] : [] };
}

function runFile(file: ParsedRuleFile, doms: Map<string, PolicyDom | FileError>): FileResult {
  const dom = doms.get(file.document);
  const failed = (error: FileError): FileResult => ({ file: file.file, ok: false, error });
  if (!dom) {
    return failed({
      code: "POL_DOCUMENT_MISSING",
      message: `${file.file}: policy document ${file.document} is not present`,
      document: file.document,
    });
  }
  if (!("documentElement" in dom)) return failed({ ...dom, message: `${file.file}: ${dom.message}` });
  const values: OverlayValue[] = [];
  for (const rule of file.rules) {
    const at = file.lines[rule.id];
    let m: Matched;
    try {
      m = evaluate(rule, dom);
    } catch (e) {
      return failed({
        code: "POL_BAD_XPATH",
        message: `${file.file}${at ? `:${at}` : ""}: rule ${rule.id}: ${(e as Error).message}`,
        rule: rule.id,
        document: file.document,
      });
    }
    if (m.texts.length === 0) {
      if (rule.optional) continue;
      return failed({
        code: "POL_XPATH_NO_MATCH",
        message: `${file.file}${at ? `:${at}` : ""}: rule ${rule.id}: "${rule.select}" matched nothing in ${file.document}`,
        rule: rule.id,
        document: file.document,
      });
    }
    try {
      values.push({
        key: rule.target,
        value: convert(rule.convert, m.texts),
        rule: rule.id,
        document: file.document,
        ...(m.line !== undefined ? { line: m.line } : {}),
      });
    } catch (e) {
      const code = e instanceof ConversionError ? e.code : "POL_CONVERT_FAILED";
      return failed({
        code,
        message: `${file.document}${m.line ? `:${m.line}` : ""}: rule ${rule.id} (${file.file}${at ? `:${at}` : ""}) → ${rule.target}: ${(e as Error).message}`,
        rule: rule.id,
        document: file.document,
        ...(m.line !== undefined ? { line: m.line } : {}),
      });
    }
  }
  return { file: file.file, ok: true, values };
}

/** Parses each document once (a malformed one fails only the files that read it), then runs every file. */
export function remap(files: ParsedRuleFile[], documents: PolicyDocumentInput[]): FileResult[] {
  const doms = new Map<string, PolicyDom | FileError>();
  const needed = new Set(files.map((f) => f.document));
  for (const d of documents) {
    if (!needed.has(d.name)) continue;
    try {
      const dom = parsePolicyXml(d.name, d.xml);
      indexDocumentOrder(dom);
      doms.set(d.name, dom);
    } catch (e) {
      const line = isOutpostError(e) ? (e.details?.line as number | undefined) : undefined;
      doms.set(d.name, {
        code: isOutpostError(e) ? e.code : "POL_XML_MALFORMED",
        message: (e as Error).message,
        document: d.name,
        ...(line ? { line } : {}),
      });
    }
  }
  return files.map((f) => runFile(f, doms));
}
