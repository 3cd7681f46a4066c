/**
 * Alert sinks are a seam: the core emits alerts, deployments plug in where
 * they go (plugins/sinks/http-alerts.ts posts them to the vendor's and the
 * admin's endpoints). The core never knows a concrete sink.
 */
export interface Alert {
  kind:
    | "update-rejected"
    | "content-rolled-back"
    | "handler-failed"
    | "ips-self-disabled"
    | "selfhelp-finding"
    | "telemetry-refused"
    | "software-rolled-back"
    /** A result or event sink's queue reached its cap and dropped rows (once per episode). */
    | "sink-dropped";
  at: string;
  host: string;
  agentVersion: string;
  group: string;
  type?: string;
  file?: string;
  code: string;
  reason: string;
}

export interface AlertSink {
  readonly name: string;
  send(alert: Alert): Promise<void>;
  /** Waits for in-flight deliveries (used on shutdown and in tests). */
  flush?(): Promise<void>;
}
