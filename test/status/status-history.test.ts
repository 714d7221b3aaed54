// StatusHistory over hand-driven counters and clocks: rates per second from deltas, bounded
// rings, devices that come, go and come back, latency from bucket deltas.
import { expect, test } from "bun:test";
import { DeviceMetrics, OPCODE_GROUPS } from "../../src/metrics/device-metrics.ts";
import { StatusHistory } from "../../src/status/status-history.ts";

const READ = OPCODE_GROUPS.indexOf("read");
const WRITE = OPCODE_GROUPS.indexOf("write");
const OTHER = OPCODE_GROUPS.indexOf("other");
const PROCESS = { rssBytes: 1 << 20, cpuPercent: 5 };

function busy(metrics: DeviceMetrics, reads: number, writes: number, others = 0): void {
  metrics.commandsByGroup[READ]! += reads;
  metrics.commandsByGroup[WRITE]! += writes;
  metrics.commandsByGroup[OTHER]! += others;
  metrics.bytesRead += reads * 4096;
  metrics.bytesWritten += writes * 8192;
}

test("the first sample is the baseline; later ones are per-second rates over the time that passed", () => {
  const history = new StatusHistory(10);
  const metrics = new DeviceMetrics();
  busy(metrics, 1000, 1000);
  const devices = [{ name: "d0", metrics }];
  history.sample(devices, 10_000, PROCESS);
  expect(history.lastSeq).toBe(0);
  expect(history.deviceSeries("d0", 10).iops).toEqual([]);
  busy(metrics, 100, 50, 10);
  history.sample(devices, 10_500, PROCESS);
  expect(history.lastSeq).toBe(1);
  expect(history.deviceRates("d0")).toEqual({
    iops: 320,
    readIops: 200,
    writeIops: 100,
    readBytesPerSecond: 200 * 4096,
    writtenBytesPerSecond: 100 * 8192,
    latencyP50Ms: null,
    latencyP99Ms: null,
  });
  expect(history.aggregateRates.iops).toBe(320);
  // A tick that did not move the clock adds nothing.
  history.sample(devices, 10_500, PROCESS);
  expect(history.lastSeq).toBe(1);
});

test("the rings keep the newest samples only, aligned to the last sequence number", () => {
  const history = new StatusHistory(5);
  const metrics = new DeviceMetrics();
  const devices = [{ name: "d0", metrics }];
  for (let tick = 0; tick <= 8; tick += 1) {
    busy(metrics, tick, 0);
    history.sample(devices, tick * 1000, { rssBytes: tick, cpuPercent: tick });
  }
  expect(history.lastSeq).toBe(8);
  const series = history.deviceSeries("d0", 300);
  expect(series.firstSeq).toBe(4);
  expect(series.readIops).toEqual([4, 5, 6, 7, 8]);
  expect(history.deviceSeries("d0", 2)).toMatchObject({ firstSeq: 7, readIops: [7, 8] });
  expect(history.processSeries(3)).toEqual({ firstSeq: 6, rssBytes: [6, 7, 8], cpuPercent: [6, 7, 8] });
  expect(history.aggregateSeries(300).readIops).toEqual([4, 5, 6, 7, 8]);
});

test("a device seen later counts from zero; one attached again keeps its series; one gone is forgotten", () => {
  const history = new StatusHistory(10);
  const first = new DeviceMetrics();
  history.sample([{ name: "d0", metrics: first }], 0, PROCESS);
  busy(first, 10, 0);
  const late = new DeviceMetrics();
  busy(late, 0, 30);
  history.sample([{ name: "d0", metrics: first }, { name: "d1", metrics: late }], 1000, PROCESS);
  expect(history.deviceRates("d1").writeIops).toBe(30);
  expect(history.deviceSeries("d1", 10).firstSeq).toBe(1);
  // d0 attached again: new counters, from zero, and the series goes on.
  const again = new DeviceMetrics();
  busy(again, 7, 0);
  history.sample([{ name: "d0", metrics: again }], 2000, PROCESS);
  expect(history.deviceSeries("d0", 10)).toMatchObject({ firstSeq: 1, readIops: [10, 7] });
  expect(history.deviceSeries("d1", 10).iops).toEqual([]);
  expect(history.deviceRates("d1").iops).toBe(0);
});

test("latency percentiles come from this interval's bucket deltas, merged over devices for the aggregate", () => {
  const history = new StatusHistory(10);
  const fast = new DeviceMetrics();
  const slow = new DeviceMetrics();
  // Old, slow history must not weigh on this second's percentiles.
  slow.latencyBuckets[10] = 1000;
  const devices = [{ name: "fast", metrics: fast }, { name: "slow", metrics: slow }];
  history.sample(devices, 0, PROCESS);
  fast.latencyBuckets[0]! += 90;
  slow.latencyBuckets[4]! += 10;
  history.sample(devices, 1000, PROCESS);
  expect(history.deviceRates("fast").latencyP50Ms).toBe(0.025);
  expect(history.deviceRates("slow").latencyP50Ms).toBe(0.75);
  // 90 at 0–50 µs and 10 at 0.5–1 ms: the median is fast, p99 slow.
  expect(history.aggregateRates.latencyP50Ms).toBeCloseTo(0.05 * (50 / 90), 3);
  expect(history.aggregateRates.latencyP99Ms).toBeCloseTo(0.5 + 0.5 * 0.9, 3);
  history.sample(devices, 2000, PROCESS);
  expect(history.deviceRates("fast").latencyP50Ms).toBeNull();
  expect(history.deviceSeries("fast", 10).latencyP50Ms).toEqual([0.025, null]);
});
