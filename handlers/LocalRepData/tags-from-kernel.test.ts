/**
 * LocalRepData process tags from kernel exec events (core/sensors): a burst
 * of 500 short-lived processes gives 500 tags, because each exec event
 * carries the SHA-256 of the file the kernel executed (fanotify
 * FAN_OPEN_EXEC fd), however fast the process exits. Root only (CI).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import type { SensorEvent } from "../../core/sensors/bus.ts";
import { ProcessSensor } from "../../core/sensors/process.ts";
import { ProcessTagger } from "./process-tagger.ts";

setDefaultTimeout(60_000);

test.if(process.getuid?.() === 0)("500 /bin/true in a loop: 500 tags with reputation", async () => {
  const events: SensorEvent[] = [];
  const sensor = new ProcessSensor({ mode: "auto", publish: (e) => events.push(...e) });
  sensor.start();
  try {
    const sh = Bun.spawn(["sh", "-c", "i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done"]);
    await sh.exited;
    const ours = () => events.filter((e) => e.type === "process.start" && e.ppid === sh.pid);
    // A deadline, not a delay: on a loaded machine the reader thread's last batches trail the loop by seconds.
    const deadline = Date.now() + 45_000;
    while (ours().length < 500 && Date.now() < deadline) await Bun.sleep(10);
    expect({ seen: ours().length, status: sensor.status() }).toMatchObject({
      seen: 500,
      status: { kernelLost: 0, dropped: 0 },
    });
    const tagged: Record<string, unknown>[] = [];
    const asked: string[] = [];
    const tagger = new ProcessTagger({
      call: async (_t: string, _m: string, args: unknown) =>
        (args as { items: { sha256: string }[] }).items.map((q) => {
          asked.push(q.sha256);
          return { sha256: q.sha256, score: 90, band: "high", class: "os", source: "hash" };
        }),
      emit: (type: string, f: Record<string, unknown>) => {
        if (type === "process-tagged") tagged.push(f);
      },
    });
    await tagger.ingest(ours());
    expect(tagged.length).toBe(500);
    expect(new Set(tagged.map((t) => t.pid)).size).toBe(500);
    expect(tagged.every((t) => String(t.exe).endsWith("/true") && t.band === "high")).toBe(true);
    // One binary, one lookup: reputation answers are cached by hash.
    expect(new Set(asked).size).toBe(1);
  } finally {
    await sensor.stop();
  }
});
