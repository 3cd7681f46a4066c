/** A handler's API over HTTP: the JSON body is the argument, `{ result }` the answer. */
import { Hono } from "hono";
import type { AgentApi } from "../../agent/api.ts";
import { ControlError } from "../errors.ts";
import { contentTypeParam, methodParam } from "./params.ts";

export function handlerRoutes(api: AgentApi): Hono {
  return new Hono().post("/:type/:method", async (c) => {
    const type = contentTypeParam(c.req.param("type"));
    const method = methodParam(c.req.param("method"));
    const text = await c.req.text();
    let args: unknown = null;
    if (text.trim() !== "") {
      try {
        args = JSON.parse(text);
      } catch (e) {
        throw new ControlError("CTL_BAD_REQUEST", `request body is not valid JSON: ${(e as Error).message}`);
      }
    }
    const result = await api.call(type, method, args);
    // `undefined` would vanish from the JSON; the client must still see the key.
    return c.json({ result: result ?? null });
  });
}
