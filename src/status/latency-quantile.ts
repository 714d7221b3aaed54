// Latency percentiles from a delta of DeviceMetrics.latencyBuckets (per-bucket counts, the
// last one +Inf), interpolated inside the bucket as Prometheus's histogram_quantile() does: a
// bucket says only that a command took between its bounds, so this is an estimate whose error
// is bounded by the bucket width (50 µs at the bottom, 1.5 s at the top).
import { LATENCY_BUCKETS_SECONDS } from "../metrics/device-metrics.ts";

/** The q-quantile (0 < q < 1) in milliseconds; null when the buckets hold no command. */
export function latencyQuantileMs(bucketCounts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let index = 0; index < bucketCounts.length; index += 1) total += bucketCounts[index]!;
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let index = 0; index < bucketCounts.length; index += 1) {
    const inBucket = bucketCounts[index]!;
    if (inBucket > 0 && below + inBucket >= rank) {
      // The +Inf bucket has no upper bound: its commands took at least the last finite one.
      if (index >= LATENCY_BUCKETS_SECONDS.length) return LATENCY_BUCKETS_SECONDS.at(-1)! * 1000;
      const lower = index === 0 ? 0 : LATENCY_BUCKETS_SECONDS[index - 1]!;
      const upper = LATENCY_BUCKETS_SECONDS[index]!;
      return (lower + ((upper - lower) * (rank - below)) / inBucket) * 1000;
    }
    below += inBucket;
  }
  return LATENCY_BUCKETS_SECONDS.at(-1)! * 1000;
}
