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

type Ordered = XmlNode & {
  __order?: number;
  compareDocumentPosition: unknown;
  attributes?: ArrayLike<Ordered> | null;
};

/** Preceding (0x02) or following (0x04) by the pre-order number `indexDocumentOrder` gave each node. */
function compareByOrder(this: Ordered, other: Ordered): number {
  return (other.__order ?? 0) < (this.__order ?? 0) ? 0x02 : 0x04;
}

/**
 * Numbers every node (and attribute) in document order and gives it an O(1)
 * compareDocumentPosition. `xpath` sorts every node-set it filters with that
 * method, and xmldom's walks the whole tree on each call: over a 1 MB
 * policy that made one predicate step cost milliseconds. Measured in
 * bench/policy.ts (about 2× on every query). Call once per parsed document.
 */
export function indexDocumentOrder(root: XmlNode): void {
  let order = 0;
  const stack: Ordered[] = [root as Ordered];
  while (stack.length > 0) {
    const n = stack.pop()!;
    n.__order = order++;
    n.compareDocumentPosition = compareByOrder;
    const attrs = n.attributes;
    if (attrs) {
      for (let i = 0; i < attrs.length; i++) {
        const a = attrs[i]!;
        a.__order = order++;
        a.compareDocumentPosition = compareByOrder;
      }
    }
    const children: Ordered[] = [];
    for (let c = n.firstChild as Ordered | null; c; c = c.nextSibling as Ordered | null) children.push(c);
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
}

/** Evaluates `expression` against `node`: matched nodes, or a string, number or boolean result. */
export const selectXPath = (expression: string, node: XmlNode) => lib.select(expression, node);

/** Compiles without evaluating (throws on syntax errors): how M2 checks a query before any document exists. */
export const compileXPath = (expression: string): void => {
  lib.parse(expression);
};
