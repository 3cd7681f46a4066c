/**
 * Config sections of the kernel sensors (core/sensors/) (a contract: tests outside this
 * repo write these keys). core/config.ts references them, one line each.
 */
import { z } from "zod";
import { lazySchema } from "./schema/lazy-schema.ts";

const AbsPath = lazySchema(() => z.string().regex(/^\//, "an absolute path"));

export const OnAccessSchema = lazySchema(() =>
  z
    .object({
      enabled: z.boolean().default(false),
      /** detect: scan after write and at exec, report; block: hold each open until scanned, EPERM if detected. */
      mode: z.enum(["detect", "block"]).default("detect"),
      paths: z.array(AbsPath).min(1).default(["/"]),
      excludePaths: z.array(AbsPath).default([]),
      /** Larger files are allowed unscanned (counted). */
      maxFileBytes: z
        .number()
        .int()
        .positive()
        .default(32 * 1024 * 1024),
      /** A permission event not decided within this is allowed (fail-open, counted). */
      timeoutMs: z.number().int().min(10).max(60_000).default(1000),
    })
    .strict()
    .prefault({}),
);

export const SensorsSchema = lazySchema(() =>
  z
    .object({
      /** auto: process connector, /proc polling when unavailable; poll: polling only. */
      process: z.enum(["auto", "netlink", "fanotify", "poll"]).default("auto"),
      files: z
        .object({
          /** Directories (or files) whose changes become file.* events for Behavior. */
          paths: z.array(AbsPath).default([]),
        })
        .strict()
        .prefault({}),
      /**
       * network.connect from the kernel: auto/nflog = an nftables log rule + nfnetlink_log
       * (core/sensors/network.ts); off (or unavailable) = Behavior polls /proc/net/tcp.
       */
      network: z.enum(["auto", "nflog", "off"]).default("auto"),
      /** The nfnetlink_log group of that rule; change it only if another program on the host uses it. */
      nflogGroup: z.number().int().min(1).max(65_535).default(3471),
      /** The /proc sweep interval when polling is the fallback. */
      pollIntervalMs: z.number().int().min(50).max(60_000).default(1000),
    })
    .strict()
    .prefault({}),
);

export type OnAccessConfig = z.infer<typeof OnAccessSchema>;
export type SensorsConfig = z.infer<typeof SensorsSchema>;
