import { expect, test } from "bun:test";
import { LATENCY_BUCKETS_SECONDS } from "../../src/metrics/device-metrics.ts";
import { latencyQuantileMs } from "../../src/status/latency-quantile.ts";

const buckets = (entries: Record<number, number>) => {
  const counts = new Float64Array(LATENCY_BUCKETS_SECONDS.length + 1);
  for (const [index, count] of Object.entries(entries)) counts[Number(index)] = count;
  return counts;
};

test("no command: no percentile", () => {
  expect(latencyQuantileMs(buckets({}), 0.5)).toBeNull();
});

test("inside a bucket the rank is interpolated between its bounds, as histogram_quantile does", () => {
  // All in the first bucket (0–50 µs): the median is halfway.
  expect(latencyQuantileMs(buckets({ 0: 10 }), 0.5)).toBeCloseTo(0.025, 6);
  // 0.1–0.25 ms holds everything: p99 is 99% of the way up.
  expect(latencyQuantileMs(buckets({ 2: 100 }), 0.99)).toBeCloseTo(0.1 + 0.15 * 0.99, 6);
  // Half at 0.5–1 ms, half at 1–2.5 ms: p50 is the top of the first, p99 near 2.5 ms.
  expect(latencyQuantileMs(buckets({ 4: 50, 5: 50 }), 0.5)).toBeCloseTo(1, 6);
  expect(latencyQuantileMs(buckets({ 4: 50, 5: 50 }), 0.99)).toBeCloseTo(1 + 1.5 * 0.98, 6);
});

test("the +Inf bucket reports the last finite bound: at least 2.5 s", () => {
  expect(latencyQuantileMs(buckets({ 0: 1, [LATENCY_BUCKETS_SECONDS.length]: 99 }), 0.99)).toBe(2500);
});
