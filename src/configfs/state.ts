// What tcmu-appliance created in configfs, so it never touches what it did not: a JSON file in
// the run directory (/run/tcmu-appliance by default). /run is cleared at boot like configfs
// itself, so the record and the objects live and die together. `create`, `remove` and serve
// may run at once: every update holds an flock on a lock file beside it and replaces the file
// atomically (write, then rename).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import * as libc from "../libc/libc.ts";
import type { IscsiExportRecord } from "./iscsi-export.ts";
import type { LoopExportRecord } from "./loop-export.ts";

export const DEFAULT_RUN_DIR = "/run/tcmu-appliance";
const STATE_FILE = "state.json";
const STATE_LOCK_FILE = "state.lock";
const STATE_VERSION = 1;

export type ExportRecord = LoopExportRecord | IscsiExportRecord;

export interface DeviceRecord {
  name: string;
  hbaId: number;
  subtype: string;
  backstore: string;
  sizeBytes: number;
  blockSizeBytes: number;
  /** Who asked for it: the `create` command or the config file. */
  source: "cli" | "config";
  exports: ExportRecord[];
  /** wwn/vpd_unit_serial as written at creation. */
  serial?: string;
  /**
   * ALUA groups made under the device's alua/ directory (its own and its peers'), recorded
   * before each mkdir; `remove` takes them away after the exports and before the device.
   */
  aluaGroups?: string[];
  createdAt: string;
  /**
   * Set when the device was created with nl_reply_supported=-1 because another TCMU daemon ran
   * (whom): its enable did not wait for serve's verdict.
   */
  repliesOptedOutFor?: string;
}

export interface OwnershipState {
  version: number;
  devices: Record<string, DeviceRecord>;
}

const exportRecordSchema = z.union([
  z.object({ fabric: z.literal("loop"), wwn: z.string(), aluaGroup: z.string().optional() }),
  z.object({ fabric: z.literal("iscsi"), iqn: z.string(), portal: z.string(), access: z.string(), aluaGroup: z.string().optional() }),
]);

const stateSchema = z.object({
  version: z.literal(STATE_VERSION),
  devices: z.record(
    z.string(),
    z.object({
      name: z.string(),
      hbaId: z.number().int(),
      subtype: z.string(),
      backstore: z.string(),
      sizeBytes: z.number(),
      blockSizeBytes: z.number(),
      source: z.enum(["cli", "config"]),
      exports: z.array(exportRecordSchema),
      serial: z.string().optional(),
      aluaGroups: z.array(z.string()).optional(),
      createdAt: z.string(),
      repliesOptedOutFor: z.string().optional(),
    }),
  ),
});

export class StateError extends Error {
  readonly code = "E_STATE_INVALID";
}

export class StateStore {
  readonly runDir: string;

  constructor(runDir: string = DEFAULT_RUN_DIR) {
    this.runDir = runDir;
  }

  get path(): string {
    return join(this.runDir, STATE_FILE);
  }

  read(): OwnershipState {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { version: STATE_VERSION, devices: {} };
      throw new StateError(`${this.path}: cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new StateError(`${this.path}: not JSON; delete it to forget which configfs objects tcmu-appliance created`);
    }
    const result = stateSchema.safeParse(parsed);
    if (!result.success) throw new StateError(`${this.path}: not a tcmu-appliance state file (${result.error.issues[0]?.message ?? "invalid"})`);
    return result.data as OwnershipState;
  }

  /** Runs `change` on the current state under the lock and saves what it leaves. */
  update<T>(change: (state: OwnershipState) => T): T {
    mkdirSync(this.runDir, { recursive: true, mode: 0o755 });
    const lockPath = join(this.runDir, STATE_LOCK_FILE);
    const fd = libc.open(lockPath, libc.O_RDWR | libc.O_CREAT, 0o644);
    try {
      libc.flock(fd, libc.LOCK_EX, lockPath);
      const state = this.read();
      const result = change(state);
      const temporary = `${this.path}.${process.pid}.tmp`;
      writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      renameSync(temporary, this.path);
      return result;
    } finally {
      libc.close(fd);
    }
  }

  record(device: DeviceRecord): void {
    this.update((state) => {
      state.devices[device.name] = device;
    });
  }

  forget(name: string): boolean {
    return this.update((state) => {
      const known = Object.hasOwn(state.devices, name);
      delete state.devices[name];
      return known;
    });
  }
}
