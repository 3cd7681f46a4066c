/**
 * Config sections of the kernel sensors (core/sensors/) (a contract: tests outside this
 * repo write these keys). core/config.ts references them, one line each.
 */

import { lazySchema } from "./schema/lazy-schema.ts";
import { z } from "./schema/zod.ts";

const AbsPath = lazySchema(() => z.string().check(z.regex(/^\//, "an absolute path")));

export const OnAccessSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      enabled: z._default(z.boolean(), false),
      /** detect: scan after write and at exec, report; block: hold each open until scanned, EPERM if detected. */
      mode: z._default(z.enum(["detect", "block"]), "detect"),
      paths: z._default(z.array(AbsPath).check(z.minLength(1)), ["/"]),
      excludePaths: z._default(z.array(AbsPath), []),
      /** Larger files are allowed unscanned (counted). */
      maxFileBytes: z._default(z.int().check(z.positive()), 32 * 1024 * 1024),
      /** A permission event not decided within this is allowed (fail-open, counted). */
      timeoutMs: z._default(z.int().check(z.gte(10), z.lte(60_000)), 1000),
    }),
    {},
  ),
);

export const SensorsSchema = lazySchema(() =>
  z.prefault(
    z.strictObject({
      /** auto: process connector, /proc polling when unavailable; poll: polling only. */
      process: z._default(z.enum(["auto", "netlink", "fanotify", "poll"]), "auto"),
      files: z.prefault(
        z.strictObject({
          /** Directories (or files) whose changes become file.* events for Behavior. */
          paths: z._default(z.array(AbsPath), []),
        }),
        {},
      ),
      /**
       * network.connect from the kernel: auto/nflog = an nftables log rule + nfnetlink_log
       * (core/sensors/network.ts); off (or unavailable) = Behavior polls /proc/net/tcp.
       */
      network: z._default(z.enum(["auto", "nflog", "off"]), "auto"),
      /** The nfnetlink_log group of that rule; change it only if another program on the host uses it. */
      nflogGroup: z._default(z.int().check(z.gte(1), z.lte(65_535)), 3471),
      /** The /proc sweep interval when polling is the fallback. */
      pollIntervalMs: z._default(z.int().check(z.gte(50), z.lte(60_000)), 1000),
    }),
    {},
  ),
);

export type OnAccessConfig = z.infer<typeof OnAccessSchema>;
export type SensorsConfig = z.infer<typeof SensorsSchema>;
