/**
 * An in-memory AgentApi for control-plane and CLI tests: deterministic
 * fixtures, a record of every call, and injectable failures, so transport
 * code is tested without the real runtime.
 */
import type {
  AckResult,
  AgentApi,
  AgentStatus,
  ContentInfo,
  UpdateCycleReport,
} from "../../core/agent/api.ts";
import { StoreError } from "../../core/errors.ts";

export const FIXED_TIME = "2024-07-19T04:09:00.000Z";

export function contentFixture(overrides: Partial<ContentInfo> = {}): ContentInfo {
  return {
    type: "Hmpa_data",
    version: 3,
    signingTime: FIXED_TIME,
    sha384: "ab".repeat(48),
    installedAt: FIXED_TIME,
    lkgVersion: 2,
    handlerState: "loaded",
    handlerStatus: { entries: 42 },
    badVersions: [],
    ...overrides,
  };
}

export class FakeAgentApi implements AgentApi {
  calls: { op: string; args: unknown[] }[] = [];
  /** Answers `call`; the default echoes what it was asked. */
  answer: (type: string, method: string, args: unknown) => unknown = (type, method, args) => ({
    echo: { type, method, args },
  });
  /** When set, the next call to the named op throws it. */
  failNext = new Map<string, unknown>();
  items: ContentInfo[] = [contentFixture()];
  report: UpdateCycleReport = {
    startedAt: FIXED_TIME,
    finishedAt: FIXED_TIME,
    group: "public-1",
    repo: "/srv/repo",
    index: "updated",
    serial: 7,
    installed: [{ type: "Hmpa_data", version: 3, previousVersion: 2 }],
    unchanged: [],
    rejected: [],
    ok: true,
  };

  private record(op: string, ...args: unknown[]): void {
    this.calls.push({ op, args });
    const failure = this.failNext.get(op);
    if (failure !== undefined) {
      this.failNext.delete(op);
      throw failure;
    }
  }

  status(): AgentStatus {
    this.record("status");
    return {
      agent: {
        version: "0.1.0-test",
        commit: "abc1234",
        pid: 4242,
        startedAt: FIXED_TIME,
        uptimeSeconds: 3725,
      },
      health: "green",
      healthReasons: [],
      update: {
        repo: this.report.repo,
        group: this.report.group,
        lastAttempt: FIXED_TIME,
        lastSuccess: FIXED_TIME,
        nextRun: null,
        lastSerial: 7,
        consecutiveFailures: 0,
      },
      content: this.items,
      lastErrors: [],
    };
  }

  content(): ContentInfo[] {
    this.record("content");
    return this.items;
  }

  async update(): Promise<UpdateCycleReport> {
    this.record("update");
    return this.report;
  }

  async rollback(type: string): Promise<ContentInfo> {
    this.record("rollback", type);
    const item = this.items.find((i) => i.type === type);
    if (!item?.lkgVersion) throw new StoreError("STORE_NO_LKG", `no last-known-good version of ${type}`);
    return { ...item, version: item.lkgVersion, lkgVersion: null };
  }

  async ack(type: string): Promise<AckResult> {
    this.record("ack", type);
    return { type, acknowledged: null };
  }

  async call(type: string, method: string, args: unknown): Promise<unknown> {
    this.record("call", type, method, args);
    return this.answer(type, method, args);
  }
}
