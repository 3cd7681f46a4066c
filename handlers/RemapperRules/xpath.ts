/**
 * The XPath 1.0 library, behind a narrow typed surface. `xpath`'s own
 * declarations pull in TypeScript's DOM lib for the whole program (which
 * changes BufferSource and breaks unrelated crypto code), so it is loaded
 * with require() and typed here against xmldom's node types instead.
 */
import type { Node as XmlNode } from "@xmldom/xmldom";

interface XPathModule {
  select(expression: string, node: XmlNode): XmlNode[] | string | number | boolean | null;
  parse(expression: string): unknown;
}

const lib: XPathModule = require("xpath");

/** Evaluates `expression` against `node`: matched nodes, or a string, number or boolean result. */
export const selectXPath = (expression: string, node: XmlNode) => lib.select(expression, node);

/** Compiles without evaluating (throws on syntax errors): how M2 checks a query before any document exists. */
export const compileXPath = (expression: string): void => {
  lib.parse(expression);
};
