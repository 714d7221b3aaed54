// `tcmu-appliance serve`: serves every TCMU device whose config string carries our subtype,
// picks up devices that appear later, and on SIGINT/SIGTERM finishes what is in flight, rings
// the doorbell and exits 0.
import { defineCommand } from "citty";
import { z } from "zod";
import { openBackstore } from "../../backstores/open.ts";
import { configureLogging, logger, type LogFormat } from "../log.ts";
import { AttachedDevice } from "../serve/attached-device.ts";
import { DEFAULT_SUBTYPE, discoverDevices, SYSTEM_ROOTS, type TcmuDeviceInfo } from "../uio/discover.ts";
import { formatBytes } from "./format.ts";

/** How often sysfs is scanned for devices created after start. */
export const RESCAN_INTERVAL_MS = 2000;

const ServeArgs = z.object({
  subtype: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '_', '.', '-' only"),
  allowRoot: z.array(z.string().startsWith("/", "must be an absolute path")),
  logLevel: z.enum(["error", "warn", "info", "debug"]),
  logFormat: z.enum(["pretty", "json"]),
});

const LOG_LEVELS = { error: 0, warn: 1, info: 3, debug: 4 } as const;

export const serveCommand = defineCommand({
  meta: { name: "serve", description: "Serve every TCMU device whose config string carries our subtype" },
  args: {
    subtype: { type: "string", description: "The <subtype> of dev_config this process claims", default: DEFAULT_SUBTYPE },
    "allow-root": {
      type: "string",
      description: "Only serve backstore paths under these directories (comma-separated; default: anywhere)",
    },
    "log-level": { type: "string", description: "error, warn, info or debug", default: "info" },
    "log-format": { type: "string", description: "pretty or json", default: "pretty" },
  },
  async run({ args }) {
    const parsed = ServeArgs.safeParse({
      subtype: args.subtype,
      allowRoot: args["allow-root"] === undefined ? [] : String(args["allow-root"]).split(",").filter(Boolean),
      logLevel: args["log-level"],
      logFormat: args["log-format"],
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      console.error(`serve: --${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${issue.message}`);
      process.exit(2);
    }
    const options = parsed.data;
    configureLogging({ level: LOG_LEVELS[options.logLevel], format: options.logFormat as LogFormat });
    await serve(options.subtype, options.allowRoot);
  },
});

async function serve(subtype: string, allowedRoots: string[]): Promise<void> {
  const log = logger("serve");
  const ringLog = logger("ring");
  const devices = new Map<string, AttachedDevice>();
  /** uio → the name it had when attaching failed, so a broken device is not retried every scan. */
  const failed = new Map<string, string>();
  let stopping = false;

  const openFor = (info: TcmuDeviceInfo) =>
    openBackstore(info.configPath, {
      deviceKey: `user_${info.hbaId}/${info.deviceName}`,
      sizeBytes: info.attributes.devSizeBytes,
      blockSizeBytes: info.attributes.hwBlockSizeBytes,
      allowedRoots,
    });

  const attach = async (info: TcmuDeviceInfo) => {
    const identity = `${info.uio}:${info.deviceName}:${info.configPath}`;
    if (failed.get(info.uio) === identity) return;
    try {
      const device = await AttachedDevice.attach(info, {
        openBackstore: openFor,
        logger: { warn: (message) => ringLog.warn(`${info.deviceName}: ${message}`), error: (message) => ringLog.error(`${info.deviceName}: ${message}`) },
        onGone: (gone, reason) => {
          devices.delete(gone.info.uio);
          void gone.detach().then(
            () => log.info(`${gone.info.uio} ${reason}; released: ${gone.summary()}`),
            (error: unknown) => log.error(`${gone.info.uio} ${gone.info.deviceName}: release failed: ${String(error)}`),
          );
        },
      });
      if (stopping) return device.detach();
      devices.set(info.uio, device);
      failed.delete(info.uio);
      log.info(
        `attached ${info.uio} ${info.deviceName} config=${info.configPath} size=${formatBytes(device.scsi.config.sizeBytes)} ` +
          `block=${info.attributes.hwBlockSizeBytes} backstore=${device.backstore.description}`,
      );
    } catch (error) {
      failed.set(info.uio, identity);
      log.error(`${info.uio} ${info.deviceName} (config ${info.configPath}): not served: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  let scanning: Promise<void> = Promise.resolve();
  const scan = () => {
    scanning = scanning.then(async () => {
      if (stopping) return;
      for (const info of discoverDevices(subtype, SYSTEM_ROOTS)) {
        if (!devices.has(info.uio)) await attach(info);
      }
    });
    return scanning;
  };

  await scan();
  if (devices.size === 0) log.info(`no device with subtype "${subtype}" yet; watching for new ones`);
  const timer = setInterval(scan, RESCAN_INTERVAL_MS);

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    log.info(`${signal}: finishing in-flight commands on ${devices.size} device(s)`);
    await scanning;
    const results = await Promise.allSettled(
      [...devices.values()].map((device) => device.detach().then(() => log.info(device.summary()))),
    );
    let failures = 0;
    for (const result of results) {
      if (result.status === "rejected") {
        failures += 1;
        log.error(`detach failed: ${String(result.reason)}`);
      }
    }
    log.info("stopped");
    process.exit(failures === 0 ? 0 : 1);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}
