// `tcmu-appliance serve`: serves every TCMU device whose config string carries our subtype,
// hears about new ones over netlink (sysfs scans as the fallback), creates the devices the
// config file declares, answers /metrics and /healthz; SIGINT/SIGTERM finish what is in flight
// and exit 0, SIGHUP reloads the config file.
import { defineCommand } from "citty";
import { z } from "zod";
import { ConfigError, DEFAULT_CONFIG_PATH, emptyConfig, loadConfigFile, type ApplianceConfig } from "../appliance-config/load.ts";
import { ConfigfsError } from "../configfs/io.ts";
import { ThreadConfigfsIo } from "../configfs/thread-io.ts";
import { SYSTEM_KERNEL_SETUP } from "../configfs/kernel-setup.ts";
import { DEFAULT_RUN_DIR } from "../configfs/state.ts";
import { configureLogging, logger, type LogFormat } from "../log.ts";
import { DEFAULT_METRICS_LISTEN } from "../metrics/http.ts";
import { Appliance } from "../serve/appliance.ts";
import { COMPAT_MODES } from "../serve/handler-claims.ts";
import { InstanceLockedError } from "../serve/instance-lock.ts";
import { DEFAULT_SUBTYPE, SYSTEM_ROOTS } from "../uio/discover.ts";
import { existsSync } from "node:fs";
import { FILE_IO_MODES, type FileIoMode } from "../../backstores/file/file-io.ts";
import { DATA_PLANE_THREADS_MAX, DEFAULT_DATA_PLANE_SETTINGS, POLL_US_MAX } from "../data-plane/settings.ts";

/** A stop that has not finished draining after this long exits anyway (replies cleared first). */
export const STOP_TIMEOUT_MS = 60_000;

const LOG_LEVELS = { error: 0, warn: 1, info: 3, debug: 4 } as const;

const ServeArgs = z.object({
  subtype: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '_', '.', '-' only"),
  allowRoot: z.array(z.string().startsWith("/", "must be an absolute path")),
  logLevel: z.enum(["error", "warn", "info", "debug"]),
  logFormat: z.enum(["pretty", "json"]),
  metricsListen: z.string().regex(/^(off|[^:\s]+:\d{1,5}|\[[0-9a-fA-F:.]+\]:\d{1,5})$/, 'an address:port such as 127.0.0.1:9540, or "off"'),
  runDir: z.string().startsWith("/", "must be an absolute path"),
  dataPlaneThreads: z.coerce.number().int("must be a whole number").min(1).max(DATA_PLANE_THREADS_MAX).optional(),
  pollUs: z.coerce.number().int("must be a whole number").min(0).max(POLL_US_MAX),
  fileIo: z.enum(FILE_IO_MODES as [FileIoMode, ...FileIoMode[]]),
  compat: z.enum(COMPAT_MODES, { error: `must be ${COMPAT_MODES.join(" or ")}` }).optional(),
});

export const serveCommand = defineCommand({
  meta: { name: "serve", description: "Serve every TCMU device whose config string carries our subtype" },
  args: {
    config: { type: "string", description: `Declarative config file (default ${DEFAULT_CONFIG_PATH}, used when it exists)` },
    subtype: { type: "string", description: `The <subtype> of dev_config this process claims (default ${DEFAULT_SUBTYPE})` },
    "allow-root": { type: "string", description: "Only serve backstore paths under these directories (comma-separated; default: anywhere)" },
    "metrics-listen": { type: "string", description: `HTTP /metrics and /healthz address, or "off" (default ${DEFAULT_METRICS_LISTEN})` },
    "run-dir": { type: "string", description: `Lock, state and marker files (default ${DEFAULT_RUN_DIR})` },
    netlink: { type: "boolean", description: "Listen for TCM-USER netlink events (--no-netlink: scan sysfs only)", default: true },
    "log-level": { type: "string", description: "error, warn, info or debug (default info)" },
    "log-format": { type: "string", description: "pretty or json (default pretty)" },
    "data-plane-threads": { type: "string", description: "Worker threads serving the devices (default: one per CPU, at most one per device)" },
    "poll-us": { type: "string", description: "Busy-poll the rings this many µs before a worker blocks (default 0: off)" },
    "file-io": { type: "string", description: "File stores' I/O: auto, io_uring, threads or sync (default auto)" },
    compat: { type: "string", description: "tcmu-runner: also serve its handlers' devices (subtypes file, qcow, rbd) from their config strings" },
    "fault-injection": {
      type: "boolean",
      description: "Tests only: the metrics listener takes POST /fault-injection/<device>?kind=data-path|worker",
      default: false,
    },
  },
  async run({ args }) {
    const configPath = args.config === undefined ? DEFAULT_CONFIG_PATH : String(args.config);
    let config: ApplianceConfig;
    try {
      config = args.config === undefined && !existsSync(configPath) ? emptyConfig(configPath) : loadConfigFile(configPath);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) console.error(`serve: ${problem}`);
      process.exit(2);
    }
    const settings = config.serve;
    const parsed = ServeArgs.safeParse({
      subtype: args.subtype ?? settings.subtype,
      allowRoot: args["allow-root"] === undefined ? settings.allowRoots : String(args["allow-root"]).split(",").filter(Boolean),
      logLevel: args["log-level"] ?? settings.logLevel ?? "info",
      logFormat: args["log-format"] ?? settings.logFormat ?? "pretty",
      metricsListen: args["metrics-listen"] ?? settings.metricsListen ?? DEFAULT_METRICS_LISTEN,
      runDir: args["run-dir"] ?? DEFAULT_RUN_DIR,
      dataPlaneThreads: args["data-plane-threads"] ?? settings.dataPlaneThreads,
      pollUs: args["poll-us"] ?? settings.pollUs ?? DEFAULT_DATA_PLANE_SETTINGS.pollUs,
      fileIo: args["file-io"] ?? settings.fileIo ?? DEFAULT_DATA_PLANE_SETTINGS.fileIo,
      compat: args.compat ?? settings.compat,
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      console.error(`serve: --${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue.message}`);
      process.exit(2);
    }
    const options = parsed.data;
    configureLogging({ level: LOG_LEVELS[options.logLevel], format: options.logFormat as LogFormat });
    await runAppliance(
      new Appliance({
        subtype: options.subtype,
        compat: options.compat,
        allowedRoots: options.allowRoot,
        roots: SYSTEM_ROOTS,
        io: new ThreadConfigfsIo((message) => logger("configfs").warn(message)),
        setup: SYSTEM_KERNEL_SETUP,
        runDir: options.runDir,
        configPath,
        configRequired: args.config !== undefined,
        metricsListen: options.metricsListen,
        netlink: args.netlink !== false,
        log: logger("serve"),
        ringLog: logger("ring"),
        dataPlane: { threads: options.dataPlaneThreads, pollUs: options.pollUs, fileIo: options.fileIo },
        faultInjection: args["fault-injection"] === true,
      }),
    );
  },
});

async function runAppliance(appliance: Appliance): Promise<void> {
  const log = logger("serve");
  // Whatever ends the process, the kernel must not be left waiting for our netlink replies.
  process.on("exit", () => appliance.disableRepliesNow());
  const fatal = (what: string) => (error: unknown) => {
    log.error(`${what}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    appliance.disableRepliesNow();
    process.exit(1);
  };
  process.on("uncaughtException", fatal("uncaught exception"));
  process.on("unhandledRejection", fatal("unhandled rejection"));
  // Signals are taken from the start: a SIGTERM while devices attach must still clear the
  // netlink switch and drain, not kill the process with the kernel left waiting.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => {
      log.error(`still draining ${STOP_TIMEOUT_MS / 1000} s after ${signal}: exiting anyway`);
      appliance.disableRepliesNow();
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    void appliance.stop(signal).then((code) => {
      clearTimeout(timer);
      process.exit(code);
    }, fatal("stop failed"));
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGHUP", () => void appliance.reload());
  try {
    await appliance.start();
  } catch (error) {
    appliance.disableRepliesNow();
    if (error instanceof InstanceLockedError) {
      log.error(error.message);
      process.exit(1);
    }
    if (error instanceof ConfigError) {
      for (const problem of error.problems) log.error(problem);
      process.exit(2);
    }
    // The kernel side is missing or refused (no target modules, configfs not writable): the
    // message says what and how to fix it; a stack would only bury it.
    if (error instanceof ConfigfsError) {
      log.error(`cannot start: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}
