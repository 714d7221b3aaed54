// `tcmu-appliance bench`: in-process benchmarks through the kernel simulator (no root needed):
// RAM, file and qcow2 stores × 4 KiB / 64 KiB / 1 MiB × QD 1 and 32 × random and sequential ×
// read and write (qcow2 is served read-only). Flags narrow the matrix; each case runs --seconds.
// `--devices N --threads M,…` instead measures aggregate throughput over data-plane workers;
// `--isolation` what a stalled store on one worker costs a device on another.
import { availableParallelism, tmpdir } from "node:os";
import { defineCommand } from "citty";
import { z } from "zod";
import { closeSharedFileIo, FILE_IO_MODES } from "../../backstores/file/file-io.ts";
import { formatIsolation, runIsolationBench } from "../bench/isolation-bench.ts";
import { formatScaling, runScalingBench } from "../bench/scaling-bench.ts";
import { BENCH_IO_BYTES_MAX, BENCH_STORE_KINDS, openBenchStore, type BenchStoreKind } from "../bench/bench-stores.ts";
import { formatResults, runSimBench, type BenchOperation, type BenchPattern, type SimBenchResult } from "../bench/sim-bench.ts";

const SIZES: Record<string, number> = { "4k": 4096, "64k": 65536, "1m": 1048576 };

/** "a,b" → ["a", "b"], each checked against `allowed`. */
function listOf<T extends string>(allowed: readonly T[]) {
  return z
    .string()
    .transform((text) => text.split(",").map((item) => item.trim().toLowerCase()).filter(Boolean))
    .pipe(z.array(z.enum(allowed as [T, ...T[]])).min(1));
}

const BenchArgs = z.object({
  seconds: z.coerce.number().positive().max(600),
  sizeMib: z.coerce.number().int().min(16).max(16384),
  backstores: listOf(BENCH_STORE_KINDS),
  sizes: listOf(Object.keys(SIZES)),
  qd: z
    .string()
    .transform((text) => text.split(",").map(Number))
    .pipe(z.array(z.number().int().min(1).max(256)).min(1)),
  patterns: listOf(["rand", "seq"] as const),
  ops: listOf(["read", "write"] as const),
  io: z.enum(FILE_IO_MODES as ["auto", ...string[]]),
  dir: z.string().min(1),
  devices: z.coerce.number().int("must be a whole number").min(1).max(256).optional(),
  threads: z
    .string()
    .transform((text) => text.split(",").map(Number))
    .pipe(z.array(z.number().int().min(1).max(256)).min(1)),
  isolation: z.boolean(),
});

export const benchCommand = defineCommand({
  meta: { name: "bench", description: "Benchmark the ring engine and backstores through the kernel simulator (no root needed)" },
  args: {
    seconds: { type: "string", description: "Seconds per case", default: "1" },
    "size-mib": { type: "string", description: "Device size in MiB (filled before reads)", default: "128" },
    backstores: { type: "string", description: "Comma-separated: ram, file, qcow2", default: BENCH_STORE_KINDS.join(",") },
    sizes: { type: "string", description: "Comma-separated I/O sizes: 4k, 64k, 1m", default: "4k,64k,1m" },
    qd: { type: "string", description: "Comma-separated queue depths", default: "1,32" },
    patterns: { type: "string", description: "Comma-separated: rand, seq", default: "rand,seq" },
    ops: { type: "string", description: "Comma-separated: read, write", default: "read,write" },
    io: { type: "string", description: "File store I/O: auto, io_uring, threads or sync", default: "auto" },
    dir: { type: "string", description: "Directory for image files (the file system measured)", default: tmpdir() },
    devices: { type: "string", description: "Scaling run: this many RAM devices on data-plane workers at once (4k randread at --qd)" },
    threads: { type: "string", description: "Scaling run: comma-separated worker-thread counts to compare", default: `1,2,${availableParallelism()}` },
    isolation: { type: "boolean", description: "Isolation run: a device's QD1 latency alone and beside a stalled store on another worker", default: false },
  },
  async run({ args }) {
    const parsed = BenchArgs.safeParse({
      seconds: args.seconds,
      sizeMib: args["size-mib"],
      backstores: args.backstores,
      sizes: args.sizes,
      qd: args.qd,
      patterns: args.patterns,
      ops: args.ops,
      io: args.io,
      dir: args.dir,
      devices: args.devices,
      threads: args.threads,
      isolation: args.isolation === true,
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const flag = String(issue.path[0]).replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
      console.error(`bench: --${flag}: ${issue.message}`);
      process.exit(2);
    }
    const options = parsed.data;
    if (options.isolation) {
      console.log(formatIsolation(await runIsolationBench(options.seconds)));
      return;
    }
    if (options.devices !== undefined) {
      const scaling = await runScalingBench({ devices: options.devices, threads: [...new Set(options.threads)], seconds: options.seconds, queueDepth: Math.max(...options.qd), ioBytes: 4096 });
      console.log(formatScaling(scaling));
      return;
    }
    const results: SimBenchResult[] = [];
    try {
      for (const kind of options.backstores) await benchStore(kind, options, results);
    } finally {
      await closeSharedFileIo();
    }
    console.log(formatResults(results));
  },
});

type Options = z.infer<typeof BenchArgs>;

async function benchStore(kind: BenchStoreKind, options: Options, results: SimBenchResult[]): Promise<void> {
  const sizeBytes = options.sizeMib * 1024 * 1024;
  const store = await openBenchStore(kind, {
    sizeBytes,
    directory: options.dir,
    fileIo: options.io as Options["io"] & ("auto" | "io_uring" | "threads" | "sync"),
    queueDepthMax: Math.max(...options.qd),
  });
  if (typeof store === "string") {
    console.error(`bench: ${kind}: skipped: ${store}`);
    return;
  }
  console.error(`bench: ${kind}: ${store.ioDescription}`);
  try {
    for (const operation of options.ops as BenchOperation[]) {
      if (operation === "write" && store.readOnly) continue;
      for (const sizeName of options.sizes) {
        const ioBytes = SIZES[sizeName]!;
        if (ioBytes > BENCH_IO_BYTES_MAX) continue;
        for (const queueDepth of options.qd) {
          for (const pattern of options.patterns as BenchPattern[]) {
            const result = await runSimBench({ label: kind, device: store.device, ioBytes, queueDepth, pattern, operation, durationMs: options.seconds * 1000 });
            results.push(result);
            console.error(formatResults([result]).split("\n")[1]);
          }
        }
      }
    }
  } finally {
    await store.close();
  }
}
