// A device over the kernel simulator served by a data-plane worker, wired the way serve wires a
// /dev/uioN: the simulator's memory is an anonymous shared mapping the worker views by address;
// its interrupt is a 4-byte write to a pipe the worker's epoll watches, and the worker's doorbell
// is a 4-byte write to a second pipe that a wait thread here turns into sim.doorbell(). Used by
// the data-plane tests and `bench --devices N --threads M`.
import { AluaGaugesReader, newStatsBuffer, RingStatsReader, UnitStateReader } from "../data-plane/device-stats.ts";
import type { DataPlanePool, DataPlaneWorker } from "../data-plane/pool.ts";
import type { DeviceSpec, StoreSummary } from "../data-plane/protocol.ts";
import { parseDevConfig } from "../config/dev-config.ts";
import * as libc from "../libc/libc.ts";
import type { AluaAccessState, AluaConfig } from "../scsi/alua.ts";
import { DeviceMetrics } from "../metrics/device-metrics.ts";
import { Waiter } from "../uio/waiter.ts";
import { KernelSim, type Completion, type KernelSimOptions, type SubmitOptions } from "./kernel-sim.ts";

/** Pipe reads take what is there: many interrupts or doorbells at once are one wake-up. */
const PIPE_READ_BYTES = 4096;

export interface SimWorkerDeviceOptions extends Partial<DeviceSpec> {
  /** The dev_config <path> (default "ram"), parsed here as serve parses it; or the openerModule's own string. */
  configPath?: string;
  sim?: KernelSimOptions;
  onReleased?: (reason: string) => void;
}

let simDevices = 0;

export class SimWorkerDevice {
  readonly sim: KernelSim;
  readonly worker: DataPlaneWorker;
  readonly metrics: DeviceMetrics;
  readonly engine: RingStatsReader;
  /** The SCSI unit's state as its worker publishes it (stopped, write cache). */
  readonly unit: UnitStateReader;
  /** Its ALUA group as the worker publishes it. */
  readonly alua: AluaGaugesReader;
  readonly store: StoreSummary;
  readonly released: string[] = [];
  /** The ALUA states the worker reported, in order (what serve mirrors into configfs). */
  readonly aluaChanges: AluaAccessState[] = [];
  readonly blockSizeBytes: number;
  readonly #token: number;
  readonly #pipes: number[];
  readonly #doorbellWaiter: Waiter;

  private constructor(sim: KernelSim, worker: DataPlaneWorker, token: number, stats: SharedArrayBuffer, store: StoreSummary, pipes: number[], waiter: Waiter, blockSizeBytes: number) {
    this.sim = sim;
    this.worker = worker;
    this.#token = token;
    this.metrics = new DeviceMetrics(stats, 0);
    this.engine = new RingStatsReader(stats);
    this.unit = new UnitStateReader(stats);
    this.alua = new AluaGaugesReader(stats);
    this.store = store;
    this.blockSizeBytes = blockSizeBytes;
    this.#pipes = pipes;
    this.#doorbellWaiter = waiter;
  }

  static async attach(pool: DataPlanePool, options: SimWorkerDeviceOptions = {}): Promise<SimWorkerDevice> {
    const { configPath = "ram", sim: simOptions, onReleased: _onReleased, ...specOptions } = options;
    // A test opener (openerModule) reads its string itself and is never handed the parse.
    const config = options.openerModule === undefined ? parseDevConfig(configPath) : ({ kind: "ram" } as const);
    const sim = new KernelSim(simOptions);
    const [interruptRead, interruptWrite] = libc.pipe();
    const [doorbellRead, doorbellWrite] = libc.pipe();
    const pipes = [interruptRead, interruptWrite, doorbellRead, doorbellWrite];
    const word = new Uint32Array(1);
    sim.onInterrupt = () => void libc.writeRaw(interruptWrite, word, 4);
    const waiter = new Waiter({ fd: doorbellRead, readBytes: PIPE_READ_BYTES, onWake: sim.doorbell, onGone: () => {} });
    const worker = await pool.assign();
    const holder: { device?: SimWorkerDevice } = {};
    const token = worker.register({
      gone: () => {},
      released: (reason) => {
        holder.device?.released.push(reason);
        options.onReleased?.(reason);
      },
      writeCacheChanged: () => {},
      aluaChanged: (state) => holder.device?.aluaChanges.push(state),
    });
    simDevices += 1;
    const name = options.name ?? `sim${simDevices}`;
    const spec: DeviceSpec = {
      name,
      deviceKey: `sim-${process.pid}-${simDevices}`,
      store: { configPath, config },
      sizeBytes: 64 * 1024 * 1024,
      blockSizeBytes: 512,
      hwMaxSectors: 2048,
      writeCacheEnabled: false,
      unitSerial: `${name}-serial`,
      allowedRoots: [],
      ...specOptions,
    };
    const stats = newStatsBuffer();
    try {
      const store = await worker.attach({
        token,
        spec,
        waitFd: interruptRead,
        waitReadBytes: PIPE_READ_BYTES,
        edgeTriggered: false,
        doorbellFd: doorbellWrite,
        address: sim.ring.baseAddress,
        mapBytes: sim.mapBytes,
        stats,
      });
      holder.device = new SimWorkerDevice(sim, worker, token, stats, store, pipes, waiter, spec.blockSizeBytes);
      return holder.device;
    } catch (error) {
      worker.unregister(token);
      await waiter.stop();
      for (const fd of pipes) libc.close(fd);
      sim.close();
      throw error;
    }
  }

  get sizeBytes(): number {
    return this.store.sizeBytes;
  }

  submit(cdb: Uint8Array | number[], options?: SubmitOptions): Promise<Completion> {
    return this.sim.submit(cdb instanceof Uint8Array ? cdb : Uint8Array.from(cdb), options);
  }

  /** The control plane found other ALUA groups in configfs (DeviceSet's scan). */
  setAlua(config: AluaConfig | undefined): Promise<StoreSummary | undefined> {
    return this.worker.call({ type: "alua-config", token: this.#token, config });
  }

  call(type: "resize", sizeBytes: number): Promise<StoreSummary | undefined>;
  call(type: "write-cache", enabled: boolean): Promise<StoreSummary | undefined>;
  call(type: "inject-fault" | "crash-worker"): Promise<StoreSummary | undefined>;
  call(type: string, value?: number | boolean): Promise<StoreSummary | undefined> {
    if (type === "resize") return this.worker.call({ type, token: this.#token, sizeBytes: value as number });
    if (type === "write-cache") return this.worker.call({ type, token: this.#token, enabled: value as boolean });
    return this.worker.call({ type: type === "crash-worker" ? "crash-worker" : "inject-fault", token: this.#token });
  }

  /** Drains on the worker (unless it already released the device), then unmaps. */
  async detach(destroy = true): Promise<void> {
    try {
      if (this.released.length === 0) await this.worker.call({ type: "detach", token: this.#token, destroy });
    } finally {
      this.worker.unregister(this.#token);
      await this.#doorbellWaiter.stop();
      // The worker's last doorbell may still sit in the pipe the wait thread no longer reads:
      // reap what the drain completed, as the kernel would have on that doorbell.
      this.sim.doorbell();
      for (const fd of this.#pipes) libc.close(fd);
      this.sim.close();
    }
  }
}
