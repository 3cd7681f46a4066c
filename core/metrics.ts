/**
 * A small Prometheus registry (text exposition format 0.0.4). Components
 * register their metrics on the process-wide `metrics` and the control plane
 * serves `metrics.render()` at GET /metrics. Label values are escaped; label
 * sets are bounded by the callers (content types, error codes, groups).
 */
type Labels = Record<string, string>;

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeLabel(v: string): string {
  return NEEDS_ESCAPE.test(v) ? v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"') : v;
}

/**
 * The series key of a label set. Called per increment on busy paths (every sensor event, every host
 * request), so no array is sorted or mapped for the common one-label case and no value without a
 * character to escape is run through three replaces.
 */
function key(labels: Labels | undefined): string {
  if (!labels) return "";
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  let out = "";
  for (const k of names) out += `${out ? "," : ""}${k}="${escapeLabel(String(labels[k]))}"`;
  return out;
}

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: "counter" | "gauge" | "histogram",
  ) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`bad metric name ${name}`);
  }
  abstract lines(): string[];
}

export class Counter extends Metric {
  private readonly values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, "counter");
  }
  inc(labels?: Labels, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** A handle for one label set, for hot paths: the label key is computed once, not per increment. */
  bind(labels?: Labels): { inc(by?: number): void } {
    const k = key(labels);
    return {
      inc: (by = 1) => {
        this.values.set(k, (this.values.get(k) ?? 0) + by);
      },
    };
  }
  get(labels?: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }
  lines(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${v}`);
  }
}

export class Gauge extends Metric {
  private readonly values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, "gauge");
  }
  set(labels: Labels | undefined, value: number): void {
    this.values.set(key(labels), value);
  }
  get(labels?: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }
  lines(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${v}`);
  }
}

export class Histogram extends Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    readonly buckets: number[],
  ) {
    super(name, help, "histogram");
  }
  observe(labels: Labels | undefined, value: number): void {
    this.record(key(labels), value);
  }
  /** A handle for one label set, for hot paths (see Counter.bind). */
  bind(labels?: Labels): { observe(value: number): void } {
    const k = key(labels);
    return { observe: (value) => this.record(k, value) };
  }
  private record(k: string, value: number): void {
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }
  lines(): string[] {
    const out: string[] = [];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`);
      });
      out.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return out;
  }
}

export class MetricsRegistry {
  private readonly byName = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    const existing = this.byName.get(m.name);
    if (existing) {
      if (existing.kind !== m.kind) throw new Error(`metric ${m.name} registered twice with different kinds`);
      return existing as M;
    }
    this.byName.set(m.name, m);
    return m;
  }
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.add(new Gauge(name, help));
  }
  histogram(
    name: string,
    help: string,
    buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  render(): string {
    const out: string[] = [];
    for (const m of this.byName.values()) {
      out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.kind}`, ...m.lines());
    }
    return `${out.join("\n")}\n`;
  }
}

/** The process-wide registry served at GET /metrics. */
export const metrics = new MetricsRegistry();
