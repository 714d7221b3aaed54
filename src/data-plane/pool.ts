// The control plane's side of the data plane: a fixed-size pool of worker threads (started as
// devices arrive, never more than the devices served), the assignment of each device to one of
// them, and the mailbox calls that reach a device's worker. A worker that dies takes only its
// devices with it: each hears "released" and the control plane attaches it again.
import { availableParallelism } from "node:os";
import * as libc from "../libc/libc.ts";
import type { AluaAccessState } from "../scsi/alua.ts";
import { VetoError } from "../serve/errors.ts";
import { DATA_PLANE_WORKER_URL } from "../worker-urls.ts";
import {
  MAILBOX_DEPTH_MAX,
  POSTED_INDEX,
  type AttachRequest,
  type ControlRequest,
  type PeerChunk,
  type PeerNotice,
  type StoreSummary,
  type WorkerMessage,
  type WorkerStart,
} from "./protocol.ts";
import { PeerIoError, PeerRouter, type PeerEndpoint } from "./peer-router.ts";
import type { DataPlaneSettings } from "./settings.ts";

export interface PoolLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** What a device's handle hears from its worker outside a reply. */
export interface DeviceEvents {
  gone(reason: string): void;
  released(reason: string): void;
  writeCacheChanged(enabled: boolean): void;
  aluaChanged(state: AluaAccessState): void;
}

type Request = ControlRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

const ONE = new BigUint64Array([1n]);

/** One worker thread and its mailbox. */
export class DataPlaneWorker implements PeerEndpoint {
  readonly index: number;
  readonly #worker: Worker;
  readonly #controlFd: number;
  readonly #posted: Int32Array;
  readonly #pending = new Map<number, { resolve: (value: StoreSummary | undefined) => void; reject: (error: Error) => void; peerIo: boolean }>();
  readonly #devices = new Map<number, DeviceEvents>();
  readonly #log: PoolLog;
  readonly #onExit: (worker: DataPlaneWorker) => void;
  readonly #router: PeerRouter;
  #nextId = 1;
  #nextToken = 1;
  /** Assigned by the pool, not registered yet: counted so concurrent attaches spread out. */
  #reserved = 0;
  #alive = true;
  readonly ready: Promise<void>;

  constructor(index: number, settings: DataPlaneSettings, log: PoolLog, onExit: (worker: DataPlaneWorker) => void, router = new PeerRouter()) {
    this.index = index;
    this.#log = log;
    this.#onExit = onExit;
    this.#router = router;
    this.#controlFd = libc.eventfd(0, 0);
    const posted = new SharedArrayBuffer(4);
    this.#posted = new Int32Array(posted);
    this.#worker = new Worker(DATA_PLANE_WORKER_URL);
    let markReady!: () => void;
    this.ready = new Promise((resolve) => (markReady = resolve));
    this.#worker.addEventListener("message", (event: MessageEvent<WorkerMessage>) => {
      if (event.data.type === "ready") markReady();
      else this.#handle(event.data);
    });
    this.#worker.addEventListener("error", (event) => this.#died(`worker ${index} failed: ${errorLine(event)}`));
    const start: WorkerStart = { type: "start", workerIndex: index, controlFd: this.#controlFd, posted, settings };
    this.#worker.postMessage(start);
    router.joined(this);
  }

  /** Devices assigned here (attached or attaching). */
  get deviceCount(): number {
    return this.#devices.size + this.#reserved;
  }

  reserve(): void {
    this.#reserved += 1;
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** A token for a new device and where its events go; the attach request carries the token. */
  register(events: DeviceEvents): number {
    const token = this.#nextToken++;
    if (this.#reserved > 0) this.#reserved -= 1;
    this.#devices.set(token, events);
    return token;
  }

  unregister(token: number): void {
    this.#devices.delete(token);
    this.#router.withdraw(this.index, token);
  }

  call(request: Request): Promise<StoreSummary | undefined> {
    if (!this.#alive) return Promise.reject(new Error(`data-plane worker ${this.index} is gone`));
    if (this.#pending.size >= MAILBOX_DEPTH_MAX) return Promise.reject(new Error(`data-plane worker ${this.index}: ${MAILBOX_DEPTH_MAX} requests already waiting`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, peerIo: request.type === "peer-io" });
      this.#post({ ...request, id } as ControlRequest);
    });
  }

  notify(notice: PeerNotice): void {
    if (this.#alive) this.#post(notice);
  }

  #post(message: ControlRequest): void {
    // Counted before it is posted, so the worker waits for it once it sees the count.
    Atomics.add(this.#posted, POSTED_INDEX, 1);
    this.#worker.postMessage(message);
    libc.write(this.#controlFd, ONE, 8);
  }

  async peerIo(chunk: PeerChunk): Promise<void> {
    await this.call({ type: "peer-io", ...chunk });
  }

  async attach(request: Omit<AttachRequest, "id" | "type">): Promise<StoreSummary> {
    const summary = (await this.call({ type: "attach", ...request })) as StoreSummary;
    if (this.#devices.has(request.token)) this.#router.announce({ naaKey: summary.naaKey, workerIndex: this.index, token: request.token, stats: request.stats });
    return summary;
  }

  #handle(message: WorkerMessage): void {
    switch (message.type) {
      case "reply": {
        const pending = this.#pending.get(message.id);
        if (pending === undefined) return;
        this.#pending.delete(message.id);
        if (message.ok) pending.resolve(message.value);
        else if (pending.peerIo && message.failure.backstore !== undefined) pending.reject(new PeerIoError(message.failure.backstore));
        // The worker's errorStatus() travels as the errno, so a netlink reply says the same.
        else pending.reject(new VetoError(message.failure.message, -message.failure.status));
        return;
      }
      case "peer-io":
        return this.#router.route(this, message);
      case "gone":
        return this.#devices.get(message.token)?.gone(message.reason);
      case "released":
        this.#router.withdraw(this.index, message.token);
        return this.#devices.get(message.token)?.released(message.reason);
      case "write-cache-changed":
        return this.#devices.get(message.token)?.writeCacheChanged(message.enabled);
      case "alua-changed":
        return this.#devices.get(message.token)?.aluaChanged(message.state);
      case "log":
        return this.#log[message.level](message.message);
      case "ready":
        return;
    }
  }

  #died(reason: string): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#log.error(`${reason}: its ${this.#devices.size} device(s) are released and attached again`);
    this.#worker.terminate();
    for (const pending of this.#pending.values()) pending.reject(new Error(reason));
    this.#pending.clear();
    const devices = [...this.#devices.values()];
    for (const token of this.#devices.keys()) this.#router.withdraw(this.index, token);
    this.#devices.clear();
    this.#router.left(this);
    this.#onExit(this);
    for (const events of devices) events.released(reason);
    libc.close(this.#controlFd);
  }

  /** Ends the thread; every device must have been detached. */
  stop(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#router.left(this);
    this.#worker.terminate();
    libc.close(this.#controlFd);
  }
}

export class DataPlanePool {
  readonly threadsMax: number;
  readonly settings: DataPlaneSettings;
  readonly #log: PoolLog;
  readonly #workers: DataPlaneWorker[] = [];
  readonly #router = new PeerRouter();
  #nextIndex = 0;

  constructor(settings: DataPlaneSettings, log: PoolLog, cpuCount = availableParallelism()) {
    this.settings = settings;
    this.threadsMax = settings.threads ?? Math.max(1, cpuCount);
    this.#log = log;
  }

  get workers(): readonly DataPlaneWorker[] {
    return this.#workers;
  }

  /**
   * The worker a new device goes to: a new thread while there are fewer than threadsMax and
   * every running one already has a device; otherwise the one with the fewest devices. The
   * caller must register() a device on the worker it got (the slot is reserved for it).
   */
  async assign(): Promise<DataPlaneWorker> {
    const idle = this.#workers.find((worker) => worker.deviceCount === 0);
    if (idle === undefined && this.#workers.length < this.threadsMax) {
      const worker = new DataPlaneWorker(this.#nextIndex++, this.settings, this.#log, (dead) => this.#remove(dead), this.#router);
      this.#workers.push(worker);
      worker.reserve();
      await worker.ready;
      return worker;
    }
    let best = idle ?? this.#workers[0]!;
    for (const worker of this.#workers) if (worker.deviceCount < best.deviceCount) best = worker;
    // Reserved before the first await: an attach racing this one sees the count.
    best.reserve();
    await best.ready;
    return best;
  }

  #remove(worker: DataPlaneWorker): void {
    const index = this.#workers.indexOf(worker);
    if (index >= 0) this.#workers.splice(index, 1);
  }

  /** Stops every thread (after the devices were detached). */
  stop(): void {
    for (const worker of this.#workers.splice(0)) worker.stop();
  }
}

/** The error's own message: an ErrorEvent's message also carries a source excerpt, many lines long. */
function errorLine(event: ErrorEvent | Event): string {
  const error = (event as ErrorEvent).error;
  if (error instanceof Error) return error.message;
  const message = (event as ErrorEvent).message ?? String(event);
  const line = message.split("\n").find((text) => text.startsWith("error: "));
  return line === undefined ? message.split("\n")[0]! : line.slice("error: ".length);
}
