// What serve tells the data plane (flags and TOML, validated in src/cli/serve.ts and
// src/appliance-config/schema.ts): how many worker threads, the busy-poll cap, and how file
// stores move data. Each worker receives these in its start message.
import type { FileIoMode } from "../../backstores/file/file-io.ts";

export interface DataPlaneSettings {
  /** Worker threads; undefined: one per online CPU, never more than the devices served. */
  threads: number | undefined;
  /** Busy-poll cap in µs before a worker blocks; 0 turns polling off. */
  pollUs: number;
  /** How file stores move data (auto picks io_uring, else I/O threads). */
  fileIo: FileIoMode;
}

export const DATA_PLANE_THREADS_MAX = 256;
export const POLL_US_MAX = 100_000;

export const DEFAULT_DATA_PLANE_SETTINGS: DataPlaneSettings = { threads: undefined, pollUs: 0, fileIo: "auto" };
