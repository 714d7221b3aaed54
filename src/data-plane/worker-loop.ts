// The loop of one data-plane worker. It blocks in epoll_wait over every UIO descriptor of its
// devices, its control eventfd, and the completion eventfds of its file I/O engines; on wake-up
// it reads each ready device's interrupt count, runs one bounded batch per ready ring (each ends
// with one doorbell), drains the microtasks that asynchronous completions queued, publishes the
// devices' counters, and goes back to waiting. Synchronous stores finish inside the batch: no
// promise, no event-loop turn, no timer. The runtime's event loop runs only while a control
// request is being received or is still in progress (opening a store, draining a device).
import { openStore, type BackstoreContext } from "../../backstores/open-store.ts";
import { setDefaultFileIoMode } from "../../backstores/file/file-io.ts";
import { drainMicrotasks } from "bun:jsc";
import * as libc from "../libc/libc.ts";
import { BackstoreError, type Backstore } from "../../backstores/types.ts";
import { PROCESS_DEVICE_REGISTRY } from "../scsi/device-registry.ts";
import { errorStatus, messageOf } from "../serve/errors.ts";
import { PeerDirectory } from "./peer-units.ts";
import { POSTED_INDEX, type AttachRequest, type ControlRequest, type FailureReport, type StoreSummary, type WorkerMessage, type WorkerStart } from "./protocol.ts";
import { installDefer, installReadableWatch, installRuntimeTurns, type ReadableWatch } from "./readable-watch.ts";
import { ServedUnit, type StoreOpener } from "./served-unit.ts";

const EPOLL_EVENT_BYTES = 12;
/** Events taken per epoll_wait; more wait for the next round. */
export const EPOLL_EVENTS_MAX = 64;
const CONTROL_TOKEN = 0;
/** Tokens of watched completion descriptors start here; device tokens stay below. */
const WATCH_TOKEN_BASE = 0x4000_0000;
/** While a control request runs, epoll_wait returns this often so the runtime gets turns. */
const CONTROL_TURN_MS = 1;
/** A faulted device's commands in flight get this long to finish before its memory is handed back. */
const FAULT_DRAIN_MS = 5000;
/** A failed loop gives its stores this long to close before the thread ends. */
const ABANDON_CLOSE_MS = 2000;
/** Busy-polling starts only within this long of a batch that found work (adaptive: idle workers sleep). */
const POLL_RECENT_MS = 50;
/**
 * A worker that has had nothing to do for this long collects its garbage once: it blocks in
 * epoll_wait and allocates too little for the collector to run by itself, so what the last
 * attach, control request or burst of commands left would otherwise stay (~1 MB).
 */
const IDLE_COLLECT_MS = 5000;

interface Watch {
  fd: number;
  readBytes: number;
  onReady: () => void;
}

export class WorkerLoop {
  readonly #start: WorkerStart;
  readonly #post: (message: WorkerMessage) => void;
  readonly #epollFd: number;
  readonly #posted: Int32Array;
  readonly #events = new Uint8Array(EPOLL_EVENT_BYTES * EPOLL_EVENTS_MAX);
  readonly #eventView = new DataView(this.#events.buffer);
  /** Interrupt counts, eventfd counters and pipe bytes land here and are thrown away. */
  readonly #scratch = new Uint8Array(4096);
  readonly #units = new Map<number, ServedUnit>();
  readonly #watches = new Map<number, Watch>();
  #nextWatchToken = WATCH_TOKEN_BASE;
  /** Units with entries to read; `#queued` keeps each in at most once. */
  #ready: ServedUnit[] = [];
  #running: ServedUnit[] = [];
  /** Units that ran a batch this round: they publish their counters after it. */
  readonly #ran: ServedUnit[] = [];
  readonly #queued = new Set<ServedUnit>();
  #deferred: (() => void)[] = [];
  readonly #inbox: ControlRequest[] = [];
  #received = 0;
  #controlInProgress = 0;
  /** Stores waiting on the runtime (a timer, a thread-safe FFI callback): the loop gives it turns. */
  #turnsHeld = 0;
  #lastWorkMs = 0;
  /** Something ran since the last idle collection (a worker starts with its loading garbage). */
  #workSinceCollect = true;
  readonly #peers: PeerDirectory;
  /** Set by the crash-worker test hook: the loop throws at its next round. */
  #crashRequested = false;

  constructor(start: WorkerStart, post: (message: WorkerMessage) => void) {
    this.#start = start;
    this.#post = post;
    this.#peers = new PeerDirectory(post);
    // EXTENDED COPY here finds the other workers' devices after this thread's own.
    PROCESS_DEVICE_REGISTRY.setPeers(this.#peers);
    this.#posted = new Int32Array(start.posted);
    this.#epollFd = libc.epollCreate();
    libc.epollAdd(this.#epollFd, start.controlFd, CONTROL_TOKEN);
    setDefaultFileIoMode(start.settings.fileIo);
    installReadableWatch((fd, readBytes, onReady) => this.#watch(fd, readBytes, onReady));
    installDefer((task) => this.#deferred.push(task));
    installRuntimeTurns(() => {
      this.#turnsHeld += 1;
      let held = true;
      return () => {
        if (held) this.#turnsHeld -= 1;
        held = false;
      };
    });
  }

  /**
   * The loop itself failed and the thread is about to end: close every store first. Their
   * descriptors and locks (a RAM store's flock, a file store's) belong to the process, not to
   * the thread, so they would outlive it and refuse the reattach.
   */
  async abandon(): Promise<void> {
    const units = [...this.#units.values()];
    this.#units.clear();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(units.map((unit) => unit.close(false))),
      new Promise((resolve) => (timer = setTimeout(resolve, ABANDON_CLOSE_MS))),
    ]);
    clearTimeout(timer);
    try {
      libc.close(this.#epollFd);
    } catch {
      // Closed already: nothing to give back.
    }
  }

  /** Called for every message the control plane posts (the worker's onmessage). */
  receive(request: ControlRequest): void {
    this.#received += 1;
    this.#inbox.push(request);
  }

  async run(): Promise<never> {
    const pollUs = this.#start.settings.pollUs;
    for (;;) {
      if (this.#crashRequested) throw new Error(`worker ${this.#start.workerIndex} crash injected (test hook)`);
      let timeoutMs = this.#ready.length > 0 || this.#deferred.length > 0 ? 0 : this.#controlInProgress > 0 || this.#turnsHeld > 0 ? CONTROL_TURN_MS : -1;
      if (timeoutMs === -1 && pollUs > 0 && this.#pollForWork(pollUs)) timeoutMs = 0;
      const idleWait = timeoutMs === -1 && this.#workSinceCollect;
      const count = libc.epollWaitRaw(this.#epollFd, this.#events, EPOLL_EVENTS_MAX, idleWait ? IDLE_COLLECT_MS : timeoutMs);
      if (count !== 0) this.#workSinceCollect = true;
      else if (idleWait) {
        Bun.gc(true);
        this.#workSinceCollect = false;
      }
      let controlWoken = false;
      // Completions outside a batch (a watched completion descriptor, deferred work, a control
      // turn) change counters of units that may not run a batch now: then every unit publishes,
      // else only those that ran.
      let publishAll = false;
      for (let index = 0; index < count; index += 1) {
        const token = this.#eventView.getUint32(index * EPOLL_EVENT_BYTES + 4, true);
        if (token === CONTROL_TOKEN) {
          libc.readNonBlocking(this.#start.controlFd, this.#scratch, 8);
          controlWoken = true;
        } else if (token >= WATCH_TOKEN_BASE) {
          const watch = this.#watches.get(token);
          if (watch === undefined) continue;
          libc.readNonBlocking(watch.fd, this.#scratch, watch.readBytes);
          watch.onReady();
          publishAll = true;
        } else {
          this.#interrupted(token, this.#eventView.getUint32(index * EPOLL_EVENT_BYTES, true));
        }
      }
      this.#runReady();
      if (this.#runDeferred()) publishAll = true;
      drainMicrotasks();
      const messagesWaiting = controlWoken || this.#received < Atomics.load(this.#posted, POSTED_INDEX);
      if (messagesWaiting || this.#controlInProgress > 0 || this.#turnsHeld > 0) {
        if (messagesWaiting) await this.#receiveControl();
        else await turnOfTheRuntime();
        // A control turn may have settled promises (a peer's answer to EXTENDED COPY): their
        // continuations run before this thread blocks again, or they would wait for its next wake-up.
        drainMicrotasks();
        publishAll = true;
      }
      // After the microtasks: completions they made (an awaited store operation) count too.
      if (publishAll) for (const unit of this.#units.values()) unit.publishStats();
      else for (const unit of this.#ran) unit.publishStats();
      this.#ran.length = 0;
    }
  }

  /**
   * A device's descriptor woke: queue its ring. A UIO fd waits edge-triggered, so the event
   * count is only read when the kernel reports an error (to find out whether it was removed);
   * a pipe is drained.
   */
  #interrupted(token: number, events: number): void {
    const unit = this.#units.get(token);
    if (unit === undefined) return;
    if (unit.edgeTriggered && (events & (libc.EPOLLERR | libc.EPOLLHUP)) === 0) return this.#markReady(unit);
    let result: number;
    try {
      result = libc.readNonBlocking(unit.waitFd, this.#scratch, unit.waitReadBytes);
    } catch {
      // uio_unregister_device: reads fail once the device is removed.
      return this.#gone(unit, "the device was removed (UIO reads fail)");
    }
    if (result === 0) return this.#gone(unit, "its descriptor reached end of file");
    this.#markReady(unit);
  }

  #markReady(unit: ServedUnit): void {
    if (this.#queued.has(unit) || !this.#units.has(unit.token)) return;
    this.#queued.add(unit);
    this.#ready.push(unit);
  }

  /** One batch per ready unit; a unit with entries left goes round again without waiting. */
  #runReady(): void {
    if (this.#ready.length === 0) return;
    const batch = this.#ready;
    this.#ready = this.#running;
    this.#running = batch;
    // Only busy-polling needs to know when work was last found; without it no clock is read
    // (a system call where the clock has no vDSO path, as in emulated machines).
    if (this.#start.settings.pollUs > 0) this.#lastWorkMs = performance.now();
    for (let index = 0; index < batch.length; index += 1) {
      const unit = batch[index]!;
      this.#queued.delete(unit);
      if (this.#units.get(unit.token) !== unit) continue;
      try {
        if (unit.processBatch()) this.#markReady(unit);
        this.#ran.push(unit);
      } catch (error) {
        this.#fault(unit, error);
      }
    }
    batch.length = 0;
  }

  /** Runs what was deferred to this round; true when anything ran. */
  #runDeferred(): boolean {
    if (this.#deferred.length === 0) return false;
    const tasks = this.#deferred;
    this.#deferred = [];
    for (const task of tasks) task();
    return true;
  }

  /** Spins on the devices' cmd_head for up to `pollUs` after recent work; true when a ring has entries. */
  #pollForWork(pollUs: number): boolean {
    if (this.#units.size === 0) return false;
    const startedMs = performance.now();
    if (startedMs - this.#lastWorkMs > POLL_RECENT_MS) return false;
    const deadlineMs = startedMs + pollUs / 1000;
    for (let spins = 0; ; spins += 1) {
      for (const unit of this.#units.values()) {
        if (!unit.engine.hasPendingEntries) continue;
        this.#markReady(unit);
        return true;
      }
      if ((spins & 63) === 63 && performance.now() > deadlineMs) return false;
    }
  }

  #watch(fd: number, readBytes: number, onReady: () => void): ReadableWatch {
    const token = this.#nextWatchToken++;
    this.#watches.set(token, { fd, readBytes, onReady });
    libc.epollAdd(this.#epollFd, fd, token);
    return {
      stop: async () => {
        if (!this.#watches.delete(token)) return;
        libc.epollDelete(this.#epollFd, fd);
      },
    };
  }

  /** Lets the runtime deliver every posted message, then starts each request. */
  async #receiveControl(): Promise<void> {
    while (this.#received < Atomics.load(this.#posted, POSTED_INDEX)) await turnOfTheRuntime();
    const requests = this.#inbox.splice(0);
    for (const request of requests) this.#startControl(request);
  }

  #startControl(request: ControlRequest): void {
    switch (request.type) {
      case "peer-added":
        return this.#peers.add(request.peer);
      case "peer-removed":
        return this.#peers.remove(request.workerIndex, request.token);
      case "peer-io-done":
        return this.#peers.done(request.requestId, request.failure);
    }
    this.#controlInProgress += 1;
    this.#execute(request).then(
      (value) => this.#post({ type: "reply", id: request.id, ok: true, value }),
      (error: unknown) => this.#post({ type: "reply", id: request.id, ok: false, failure: failureReport(error) }),
    ).finally(() => (this.#controlInProgress -= 1));
  }

  async #execute(request: Exclude<ControlRequest, { id: 0 }>): Promise<StoreSummary | undefined> {
    if (request.type === "attach") return this.#attach(request);
    if (request.type === "crash-worker") {
      this.#crashRequested = true;
      return undefined;
    }
    const unit = this.#units.get(request.token);
    if (unit === undefined) throw new Error(`device token ${request.token} is not served by worker ${this.#start.workerIndex}`);
    switch (request.type) {
      case "resize":
        await unit.resize(request.sizeBytes);
        return unit.summary;
      case "reopen":
        await unit.reopen(request.store, request.sizeBytes);
        return unit.summary;
      case "write-cache":
        await unit.setWriteCache(request.enabled);
        return undefined;
      case "alua-config":
        await unit.setAlua(request.config);
        return undefined;
      case "detach":
        return this.#detach(unit, request.destroy);
      case "inject-fault":
        unit.faultInjected = true;
        this.#markReady(unit);
        return undefined;
      case "peer-io":
        await unit.peerIo(request);
        return undefined;
    }
  }

  async #attach(request: AttachRequest): Promise<StoreSummary> {
    if (this.#units.has(request.token)) throw new Error(`device token ${request.token} is already served`);
    const opener = await openerFor(request.spec.openerModule, request);
    const name = request.spec.name;
    const unit = await ServedUnit.open(request, opener, {
      logger: {
        info: (message) => this.#post({ type: "log", level: "info", message: `${name}: ${message}` }),
        warn: (message) => this.#post({ type: "log", level: "warn", message: `${name}: ${message}` }),
        error: (message) => this.#post({ type: "log", level: "error", message: `${name}: ${message}` }),
      },
      onPendingWork: () => this.#markReady(unit),
      onWriteCacheChange: (enabled) => this.#post({ type: "write-cache-changed", token: request.token, enabled }),
      onAluaChange: (state) => this.#post({ type: "alua-changed", token: request.token, state }),
    });
    this.#units.set(unit.token, unit);
    libc.epollAdd(this.#epollFd, unit.waitFd, unit.token, unit.edgeTriggered ? libc.EPOLLIN | libc.EPOLLET : libc.EPOLLIN);
    // Whatever the kernel posted since the ring was taken over is served now.
    this.#markReady(unit);
    return unit.summary;
  }

  async #detach(unit: ServedUnit, destroy: boolean): Promise<undefined> {
    this.#stopWaiting(unit);
    unit.detaching = true;
    try {
      await unit.drainAndClose(destroy);
    } finally {
      this.#units.delete(unit.token);
      unit.publishStats();
    }
    return undefined;
  }

  #stopWaiting(unit: ServedUnit): void {
    if (unit.detaching) return;
    try {
      libc.epollDelete(this.#epollFd, unit.waitFd);
    } catch {
      // Already gone from the set (its descriptor was closed under us): nothing to stop.
    }
  }

  #gone(unit: ServedUnit, reason: string): void {
    this.#stopWaiting(unit);
    unit.detaching = true;
    this.#post({ type: "gone", token: unit.token, reason });
  }

  /**
   * The data path threw: a bug, not I/O (those become sense). Only this device is released:
   * it stops being served here, what it has in flight gets a bounded time to finish (the memory
   * stays mapped until the control plane hears "released"), and its store is closed so the
   * control plane can reattach it with its ring reset.
   */
  #fault(unit: ServedUnit, error: unknown): void {
    this.#stopWaiting(unit);
    unit.detaching = true;
    this.#units.delete(unit.token);
    const reason = `its data path failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
    this.#post({ type: "log", level: "error", message: `${unit.spec.name}: ${reason}` });
    this.#controlInProgress += 1;
    void (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([unit.engine.whenIdle(), new Promise((resolve) => (timer = setTimeout(resolve, FAULT_DRAIN_MS)))]);
        clearTimeout(timer);
        await unit.close(false);
      } catch (closeError) {
        this.#post({ type: "log", level: "warn", message: `${unit.spec.name}: closing after the fault: ${messageOf(closeError)}` });
      } finally {
        this.#controlInProgress -= 1;
        this.#post({ type: "released", token: unit.token, reason: error instanceof Error ? error.message : String(error) });
      }
    })();
  }
}

function failureReport(error: unknown): FailureReport {
  const report: FailureReport = { message: messageOf(error), status: errorStatus(error) };
  if (error instanceof BackstoreError) report.backstore = { kind: error.kind, offsetBytes: error.offsetBytes, message: error.message };
  return report;
}

function turnOfTheRuntime(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function openerFor(openerModule: string | undefined, request: AttachRequest): Promise<StoreOpener> {
  const spec = request.spec;
  const context = (sizeBytes: number): BackstoreContext => ({ deviceKey: spec.deviceKey, sizeBytes, blockSizeBytes: spec.blockSizeBytes, allowedRoots: spec.allowedRoots });
  if (openerModule === undefined) return (store, sizeBytes) => openStore(store.configPath, store.config, context(sizeBytes));
  const module = (await import(openerModule)) as { openBackstore: (configPath: string, context: BackstoreContext) => Promise<Backstore> };
  return (store, sizeBytes) => module.openBackstore(store.configPath, context(sizeBytes));
}
