/**
 * Behavior events as they enter the agent (sensor, POST /v1/events/inject,
 * `agent events replay`): flat records with a `type` and scalar fields.
 * Validated at the edge; `time` (ms since the epoch, or an ISO string)
 * defaults to arrival time.
 *
 * Types the Linux sensor produces (docs/rules.md, "Events"):
 *   process.start    pid, ppid, uid, name, exe, cmdline
 *   network.connect  proto, local, lport, remote, rport, uid, inode
 * Injected and replayed streams may carry any type, e.g. file.write (path,
 * pid, exe, bytes) or config.change (key, value, old, exe).
 */

import { HandlerError } from "../../core/errors.ts";
import { lazySchema } from "../../core/schema/lazy-schema.ts";
import { z } from "../../core/schema/zod.ts";
import type { FlatEvent } from "./codec.ts";

export const EVENT_TYPE_RE = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+){0,3}$/;
export const FIELD_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const MAX_FIELDS = 64;
export const MAX_EVENTS_PER_CALL = 10_000;

const Value = lazySchema(() =>
  z.union([z.string().check(z.maxLength(64 * 1024)), z.number(), z.boolean(), z.null()]),
);

export const InputEventSchema = lazySchema(() =>
  z.record(z.string().check(z.regex(FIELD_RE, "field names are identifiers")), Value).check(
    z.refine((e) => typeof e.type === "string" && EVENT_TYPE_RE.test(e.type), {
      message: "needs a type such as process.start",
      path: ["type"],
    }),
    z.refine((e) => Object.keys(e).length <= MAX_FIELDS, { message: `at most ${MAX_FIELDS} fields` }),
    z.refine(
      (e) => e.time === undefined || typeof e.time === "number" || !Number.isNaN(Date.parse(String(e.time))),
      {
        message: "time must be ms since the epoch or an ISO date",
        path: ["time"],
      },
    ),
  ),
);

export type BehaviorEvent = FlatEvent & { type: string; time: number };

/** Validates and normalises raw events; `where` names the source in errors (file:line, request). */
export function parseEvents(
  raw: unknown[],
  now: number,
  where: (i: number) => string,
  max = MAX_EVENTS_PER_CALL,
): BehaviorEvent[] {
  if (raw.length > max) {
    throw new HandlerError("HND_EVENTS_TOO_MANY", `${where(0)}: more than ${max} events in one call`);
  }
  return raw.map((item, i) => {
    const r = InputEventSchema.safeParse(item);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new HandlerError(
        "HND_EVENT_INVALID",
        `${where(i)}: ${issue?.path.join(".") || "(event)"}: ${issue?.message ?? "invalid event"}`,
      );
    }
    const e = r.data as FlatEvent;
    const t = e.time;
    const time = typeof t === "number" ? t : typeof t === "string" ? Date.parse(t) : now;
    return { ...e, type: e.type as string, time };
  });
}
