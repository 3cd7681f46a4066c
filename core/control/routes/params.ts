/**
 * Path parameters are checked against the same shapes the handler contract
 * allows, so nothing odd (dots, slashes, control characters) reaches the
 * agent from a URL.
 */
import { ControlError } from "../errors.ts";

const CONTENT_TYPE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const METHOD = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export function contentTypeParam(value: string): string {
  if (!CONTENT_TYPE.test(value))
    throw new ControlError("CTL_BAD_REQUEST", `invalid content type ${JSON.stringify(value)}`);
  return value;
}

export function methodParam(value: string): string {
  if (!METHOD.test(value))
    throw new ControlError("CTL_BAD_REQUEST", `invalid handler method ${JSON.stringify(value)}`);
  return value;
}
