// A served device over the kernel simulator: engine, SCSI unit and backstore wired the same way
// `serve` wires them for /dev/uioN. Used by the tests and by `bench`.
import { RamBackstore } from "../../backstores/ram/ram-backstore.ts";
import type { Backstore } from "../../backstores/types.ts";
import { RingDriver } from "../ring/driver.ts";
import { RingEngine, type RingEngineOptions } from "../ring/engine.ts";
import { DEFAULT_IDENTITY, ScsiDevice, type ScsiDeviceConfig } from "../scsi/device.ts";
import { KernelSim, type Completion, type KernelSimOptions, type SubmitOptions } from "./kernel-sim.ts";

export interface SimDeviceOptions {
  sizeBytes?: number;
  blockSizeBytes?: number;
  backstore?: Backstore;
  sim?: KernelSimOptions;
  engine?: RingEngineOptions;
  scsi?: Partial<ScsiDeviceConfig>;
}

export class SimDevice {
  readonly sim: KernelSim;
  readonly engine: RingEngine;
  readonly scsi: ScsiDevice;
  readonly backstore: Backstore;
  readonly driver: RingDriver;

  constructor(options: SimDeviceOptions = {}) {
    const sizeBytes = options.sizeBytes ?? options.backstore?.sizeBytes ?? 64 * 1024 * 1024;
    this.backstore = options.backstore ?? new RamBackstore(sizeBytes);
    this.sim = new KernelSim(options.sim);
    this.scsi = new ScsiDevice(this.backstore, {
      name: "sim0",
      blockSizeBytes: options.blockSizeBytes ?? 512,
      sizeBytes,
      maxTransferBlocks: 128,
      writeCacheEnabled: false,
      identity: { ...DEFAULT_IDENTITY, unitSerial: "sim0-serial" },
      ...options.scsi,
    });
    this.engine = new RingEngine(this.sim.ring, this.sim.doorbell, this.scsi, options.engine);
    // No busy-polling: the simulated initiator runs on this same thread, so a window could
    // never catch a command, only delay the next one.
    this.driver = new RingDriver(this.engine);
    this.sim.onInterrupt = this.driver.kick;
  }

  get blockSizeBytes(): number {
    return this.scsi.blockSizeBytes;
  }

  get sizeBytes(): number {
    return this.scsi.sizeBytes;
  }

  submit(cdb: Uint8Array | number[], options?: SubmitOptions): Promise<Completion> {
    return this.sim.submit(cdb instanceof Uint8Array ? cdb : Uint8Array.from(cdb), options);
  }

  async close(): Promise<void> {
    await this.engine.whenIdle();
    // Leaves the process-wide registry EXTENDED COPY looks targets up in.
    this.scsi.close();
    await this.backstore.close();
    this.sim.close();
  }
}
