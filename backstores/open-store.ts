// Opening a parsed dev_config (the <path> part after "<subtype>/"): what needs the file system —
// the allowed-roots check, content detection of bare paths — and the openers. The grammar lives
// in src/config/dev-config.ts, and open.ts puts the two together for callers holding a string;
// data-plane threads get the config parsed by the control plane and call this file alone, so
// they never load the parser's zod. qcow2 and rbd code is loaded only when such a store opens.
import { realpathSync } from "node:fs";
import { posix } from "node:path";
import { DevConfigError, type DetectDevConfig, type DevConfig, type FileDevConfig, type RbdDevConfig } from "../src/config/dev-config-model.ts";
import { ENOENT, SystemCallError } from "../src/libc/errno.ts";
import * as libc from "../src/libc/libc.ts";
import { openFileBackstore } from "./file/open-file.ts";
import { RamBackstore } from "./ram/ram-backstore.ts";
import { BackstoreOpenError, type Backstore } from "./types.ts";

export interface BackstoreContext {
  /** Stable per-device id ("user_1/disk0"): names the RAM store's shared-memory file. */
  deviceKey: string;
  /** dev_size. */
  sizeBytes: number;
  blockSizeBytes: number;
  /** serve --allow-root: image paths must lie under one of these; absent or empty: anywhere. */
  allowedRoots?: string[];
}

/** Bytes read from a bare path's start to tell qcow2 from raw. */
export const DETECT_PREFIX_BYTES = 512;

/** Opens the store `config` (parsed from `devConfigPath`) describes. Throws DevConfigError or BackstoreOpenError. */
export async function openStore(devConfigPath: string, config: DevConfig, context: BackstoreContext): Promise<Backstore> {
  switch (config.kind) {
    case "ram":
      return new RamBackstore(context.sizeBytes, {
        deviceKey: context.deviceKey,
        blockSizeBytes: context.blockSizeBytes,
        ...(config.label === undefined ? {} : { label: config.label }),
        ...(config.maxBytes === undefined ? {} : { maxBytes: config.maxBytes }),
      });
    case "file":
      return openRaw(allowedPath(devConfigPath, config.path, context.allowedRoots), config, context);
    case "qcow2":
      return openQcow2(allowedPath(devConfigPath, config.path, context.allowedRoots), config.snapshot, context);
    case "detect":
      return openDetected(devConfigPath, config, context);
    case "rbd":
      return openRbd(config, context);
    default:
      return assertNever(config);
  }
}

/** librbd is loaded only now: a host without it serves every other store. */
async function openRbd(config: RbdDevConfig, context: BackstoreContext): Promise<Backstore> {
  const { RbdImage } = await import("./rbd/rbd-image.ts");
  const { RbdBackstore } = await import("./rbd/rbd-backstore.ts");
  const { LibrbdMissingError } = await import("./rbd/librbd-binding.ts");
  let image;
  try {
    image = await RbdImage.open(config);
  } catch (error) {
    if (error instanceof LibrbdMissingError) throw new BackstoreOpenError(error.message);
    throw error;
  }
  try {
    if (context.sizeBytes > image.sizeBytes) {
      throw new BackstoreOpenError(`${image.description} is ${image.sizeBytes} bytes, smaller than dev_size ${context.sizeBytes}`);
    }
    if (image.objectSizeBytes % context.blockSizeBytes !== 0) {
      throw new BackstoreOpenError(`${image.description}: object size ${image.objectSizeBytes} is not a multiple of the ${context.blockSizeBytes}-byte block`);
    }
    return new RbdBackstore(image, context.blockSizeBytes);
  } catch (error) {
    image.close();
    throw error;
  }
}

async function openDetected(devConfigPath: string, config: DetectDevConfig, context: BackstoreContext): Promise<Backstore> {
  const path = allowedPath(devConfigPath, config.path, context.allowedRoots);
  const prefix = readPrefix(path);
  const { isQcowImage } = await import("./qcow2/index.ts");
  if (isQcowImage(prefix)) {
    const rawOnly = config.direct ? "direct" : config.sync ? "sync" : undefined;
    if (rawOnly !== undefined) throw new DevConfigError(devConfigPath, `option "${rawOnly}"`, `applies to raw images only; ${path} is qcow2`);
    return openQcow2(path, config.snapshot, context);
  }
  if (config.snapshot !== undefined) {
    throw new DevConfigError(devConfigPath, `option "snapshot=${config.snapshot}"`, `applies to qcow2 images only; ${path} is raw`);
  }
  return openRaw(path, config, context);
}

function openRaw(path: string, config: FileDevConfig | DetectDevConfig, context: BackstoreContext): Backstore {
  return openFileBackstore(path, {
    sizeBytes: context.sizeBytes,
    blockSizeBytes: context.blockSizeBytes,
    readOnly: config.readOnly,
    direct: config.direct,
    sync: config.sync,
    io: "auto",
  });
}

async function openQcow2(path: string, snapshot: string | undefined, context: BackstoreContext): Promise<Backstore> {
  const { openQcow2Backstore } = await import("./qcow2/index.ts");
  return openQcow2Backstore(path, { ...(snapshot === undefined ? {} : { snapshot }), sizeBytes: context.sizeBytes, readOnly: true });
}

/** The first bytes of an existing image (fewer if it is shorter). */
function readPrefix(path: string): Uint8Array {
  let fd: number;
  try {
    fd = libc.open(path, libc.O_RDONLY);
  } catch (error) {
    if (error instanceof SystemCallError && error.errno === ENOENT) {
      throw new BackstoreOpenError(`${path} does not exist (a bare path must name an image; file/<path> creates one)`);
    }
    throw new BackstoreOpenError(`cannot open ${path}: ${(error as Error).message}`);
  }
  try {
    const prefix = new Uint8Array(DETECT_PREFIX_BYTES);
    const length = libc.pread(fd, prefix, prefix.byteLength, 0, path);
    return prefix.subarray(0, length);
  } finally {
    libc.close(fd);
  }
}

/**
 * The path to open, with symlinks resolved, when it lies under an allowed root; a refusal
 * otherwise. A file that does not exist yet is judged by its directory.
 */
function allowedPath(devConfigPath: string, path: string, allowedRoots: string[] | undefined): string {
  if (allowedRoots === undefined || allowedRoots.length === 0) return path;
  const resolved = resolveExisting(path);
  for (const root of allowedRoots) {
    const relative = posix.relative(resolveExisting(root), resolved);
    const outside = relative === ".." || relative.startsWith("../") || posix.isAbsolute(relative);
    if (!outside) return resolved;
  }
  const shown = resolved === path ? "" : ` (resolves to ${resolved})`;
  throw new DevConfigError(devConfigPath, `path "${path}"`, `lies outside the allowed roots ${allowedRoots.join(", ")}${shown}`);
}

function resolveExisting(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    const parent = posix.dirname(path);
    return parent === path ? path : posix.join(resolveExisting(parent), posix.basename(path));
  }
}

function assertNever(value: never): never {
  throw new Error(`unhandled dev_config kind ${JSON.stringify(value)}`);
}
