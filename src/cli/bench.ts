// `tcmu-appliance bench`: in-process benchmarks through the kernel simulator (no root needed).
import { defineCommand } from "citty";
import { z } from "zod";
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import { formatResults, runSimBench, type SimBenchResult } from "../bench/sim-bench.ts";

const BenchArgs = z.object({
  seconds: z.coerce.number().positive().max(600),
  sizeMib: z.coerce.number().int().min(16).max(16384),
});

export const benchCommand = defineCommand({
  meta: { name: "bench", description: "Benchmark the ring engine and backstores through the kernel simulator" },
  args: {
    seconds: { type: "string", description: "Seconds per job", default: "2" },
    "size-mib": { type: "string", description: "Device size in MiB", default: "256" },
  },
  async run({ args }) {
    const parsed = BenchArgs.safeParse({ seconds: args.seconds, sizeMib: args["size-mib"] });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      console.error(`bench: --${issue.path[0] === "sizeMib" ? "size-mib" : String(issue.path[0])}: ${issue.message}`);
      process.exit(2);
    }
    const { seconds, sizeMib } = parsed.data;
    const sizeBytes = sizeMib * 1024 * 1024;
    const results: SimBenchResult[] = [];
    for (const [ioBytes, queueDepth, operation, pattern] of [
      [4096, 1, "write", "seq"],
      [4096, 1, "read", "rand"],
      [4096, 32, "read", "rand"],
      [4096, 32, "write", "rand"],
      [1048576, 8, "read", "seq"],
      [1048576, 8, "write", "seq"],
    ] as const) {
      results.push(
        await runSimBench({ label: "ram", backstore: new RamBackstore(sizeBytes), blockSizeBytes: 512, ioBytes, queueDepth, operation, pattern, durationMs: seconds * 1000 }),
      );
    }
    console.log(formatResults(results));
  },
});
