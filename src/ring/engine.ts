// The command ring, driven the way target_core_user.c expects (shared/reference/kernel-tcmu.md):
// walk entries from our read cursor to cmd_head, copy each CMD out of its entry (entry-reader.ts)
// into a command slot (in-flight.ts), dispatch it; write completions from cmd_tail onward
// (completion-queue.ts: tail-steal under CAP_OOOC), publish cmd_tail once per batch and ring the
// doorbell once. Everything read from the ring is bounds-checked against the map: a bad CMD
// entry fails that command; an entry whose length is unusable stops the ring, because there is
// no safe way to find the entry after it.
import { NO_DATA_IN, SAM_STAT_CHECK_CONDITION, type ScsiCommand } from "./command.ts";
import { CompletionQueue } from "./completion-queue.ts";
import { entryDataBytes, entryLengthIsSane, forEachTmrCommand, readRequest, type RingLayout } from "./entry-reader.ts";
import { InFlightCommands } from "./in-flight.ts";
import * as uapi from "./uapi.ts";

export interface RingMemory {
  /** The whole mapping: mailbox, command ring, data area. */
  readonly memory: Uint8Array;
  /** Address of memory[0], for handing data-area iovecs to preadv/pwritev. */
  readonly baseAddress: number;
}

export interface CommandExecutor {
  /** Fills the command's reply; returns a promise when the work finishes later. */
  execute(command: ScsiCommand): void | Promise<void>;
  /** Turns an unexpected exception into the command's reply (HARDWARE ERROR). */
  failInternally(command: ScsiCommand, reason: "malformed-entry" | "internal-error"): void;
}

export interface RingLogger {
  warn(message: string): void;
  error(message: string): void;
}

export interface RingEngineOptions {
  /** Command slots: the most commands in flight at once. */
  slotCount?: number;
  /** Entries handled per wake-up before yielding to the event loop. */
  entriesPerBatchMax?: number;
  /**
   * Data bytes (Data-Out + Data-In) of the commands in flight at most; a command that would pass
   * it waits in the ring until others complete. One command alone may always run.
   */
  inFlightBytesMax?: number;
  logger?: RingLogger;
}

export const SLOT_COUNT_DEFAULT = 256;
export const ENTRIES_PER_BATCH_MAX_DEFAULT = 512;
/** Bounds what a device keeps busy (backstore work, qcow2 buffers), not the data area itself. */
export const IN_FLIGHT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/** whenIdle() callers waiting at once, at most (drains, shutdown: a handful); more is a bug. */
export const IDLE_WAITERS_MAX = 64;

export interface RingCounters {
  commands: number;
  padEntries: number;
  tmrEntries: number;
  abortedCommands: number;
  unknownEntries: number;
  malformedEntries: number;
  doorbells: number;
  batches: number;
  /** Times the ring had work but the in-flight bounds (slots or bytes) made it wait. */
  throttled: number;
}

/**
 * Bytes of the data area: the map past the command ring. The kernel refuses a command whose data
 * would not fit it (queue_cmd_ring: "too big for data area"), so it bounds what one command carries.
 */
export function dataAreaBytesOf(memory: Uint8Array): number {
  const view = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  const ringEnd = view.getUint32(uapi.MAILBOX_CMDR_OFF_OFFSET, true) + view.getUint32(uapi.MAILBOX_CMDR_SIZE_OFFSET, true);
  return Math.max(0, memory.byteLength - ringEnd);
}

export class RingEngine implements RingLayout {
  readonly mailboxFlags: number;
  readonly cmdrOffset: number;
  readonly cmdrSizeBytes: number;
  readonly dataAreaOffset: number;
  readonly mapBytes: number;
  readonly counters: RingCounters = {
    commands: 0,
    padEntries: 0,
    tmrEntries: 0,
    abortedCommands: 0,
    unknownEntries: 0,
    malformedEntries: 0,
    doorbells: 0,
    batches: 0,
    throttled: 0,
  };
  /** Set when the ring itself is corrupt; nothing more is read until the device is reset. */
  broken = false;
  /**
   * Called when completions freed room and entries are still waiting. RingDriver points this at
   * its kick (so batches stay paced); without a driver the ring is processed right away.
   */
  onPendingWork: () => void = () => {
    this.processRing();
  };

  readonly #memory: Uint8Array;
  readonly #view: DataView;
  readonly #mailboxWords: Int32Array;
  readonly #executor: CommandExecutor;
  readonly #doorbell: () => void;
  readonly #logger: RingLogger;
  readonly #entriesPerBatchMax: number;
  readonly #outOfOrder: boolean;
  readonly #readLenSupported: boolean;
  readonly #inFlight: InFlightCommands;
  /** Per slot, made with it: what a command's promise settles into (no closure per command). */
  readonly #onSettled: (() => void)[] = [];
  readonly #onFailed: ((error: unknown) => void)[] = [];
  readonly #completed: CompletionQueue;
  readonly #slotOf = (slotIndex: number): ScsiCommand => this.#inFlight.slot(slotIndex);
  readonly #abort = (command: ScsiCommand): void => {
    if (command.aborted) return;
    // The kernel still waits for a completion of each; work not yet started is skipped.
    command.aborted = true;
    this.counters.abortedCommands += 1;
  };

  /** Next entry to read (ahead of cmd_tail while commands are in flight). */
  #readCursor: number;
  /** Our copy of cmd_tail: the next entry whose slot takes a completion. */
  #tailCursor: number;
  #flushScheduled = false;
  #inBatch = false;
  #idleWaiters: (() => void)[] = [];

  constructor(ring: RingMemory, doorbell: () => void, executor: CommandExecutor, options: RingEngineOptions = {}) {
    this.#memory = ring.memory;
    this.mapBytes = ring.memory.byteLength;
    this.#view = new DataView(ring.memory.buffer, ring.memory.byteOffset, ring.memory.byteLength);
    this.#mailboxWords = new Int32Array(ring.memory.buffer, ring.memory.byteOffset, uapi.MAILBOX_SIZE / 4);
    this.#executor = executor;
    this.#doorbell = doorbell;
    this.#logger = options.logger ?? { warn: () => {}, error: () => {} };
    this.#entriesPerBatchMax = options.entriesPerBatchMax ?? ENTRIES_PER_BATCH_MAX_DEFAULT;

    const version = this.#view.getUint16(uapi.MAILBOX_VERSION_OFFSET, true);
    if (version !== uapi.TCMU_MAILBOX_VERSION) {
      throw new Error(`mailbox version ${version}, expected ${uapi.TCMU_MAILBOX_VERSION}`);
    }
    this.mailboxFlags = this.#view.getUint16(uapi.MAILBOX_FLAGS_OFFSET, true);
    this.cmdrOffset = this.#view.getUint32(uapi.MAILBOX_CMDR_OFF_OFFSET, true);
    this.cmdrSizeBytes = this.#view.getUint32(uapi.MAILBOX_CMDR_SIZE_OFFSET, true);
    this.dataAreaOffset = this.cmdrOffset + this.cmdrSizeBytes;
    if (this.cmdrOffset < uapi.MAILBOX_SIZE || this.cmdrOffset % uapi.TCMU_OP_ALIGN_SIZE !== 0) {
      throw new Error(`mailbox cmdr_off ${this.cmdrOffset} is not a valid ring offset`);
    }
    if (this.cmdrSizeBytes < 2 * uapi.TCMU_CMD_ENTRY_SIZE || this.dataAreaOffset > ring.memory.byteLength) {
      throw new Error(`mailbox cmdr_size ${this.cmdrSizeBytes} does not fit the ${ring.memory.byteLength}-byte map`);
    }
    this.#outOfOrder = (this.mailboxFlags & uapi.TCMU_MAILBOX_FLAG_CAP_OOOC) !== 0;
    this.#readLenSupported = (this.mailboxFlags & uapi.TCMU_MAILBOX_FLAG_CAP_READ_LEN) !== 0;

    const slotCount = options.slotCount ?? SLOT_COUNT_DEFAULT;
    this.#inFlight = new InFlightCommands(ring.memory, ring.baseAddress, slotCount, options.inFlightBytesMax ?? IN_FLIGHT_BYTES_MAX_DEFAULT, (command) => {
      this.#onSettled.push(() => this.#complete(command));
      this.#onFailed.push((error: unknown) => {
        this.#failFromException(command, error);
        this.#complete(command);
      });
    });
    this.#completed = new CompletionQueue(slotCount);

    // Whatever lies between cmd_tail and cmd_head is served. serve resets a ring that a dead
    // predecessor left commands in before building the engine (src/serve/ring-recovery.ts says
    // why those entries cannot be trusted), so what is found here was posted after the reset.
    this.#tailCursor = this.#loadTail();
    this.#readCursor = this.#tailCursor;
    if (this.#tailCursor % uapi.TCMU_OP_ALIGN_SIZE !== 0 || this.#tailCursor >= this.cmdrSizeBytes) {
      throw new Error(`mailbox cmd_tail ${this.#tailCursor} is not a valid ring position`);
    }
  }

  get outOfOrderCompletion(): boolean {
    return this.#outOfOrder;
  }

  get inFlightCount(): number {
    return this.#inFlight.count;
  }

  /** Data bytes of the commands in flight (counted against inFlightBytesMax). */
  get inFlightBytes(): number {
    return this.#inFlight.bytes;
  }

  /** Bytes of the ring between cmd_tail and cmd_head: posted and not yet completed. */
  get occupancyBytes(): number {
    return this.#distance(this.#tailCursor, this.#loadHead());
  }

  /** True when the kernel has posted entries we have not read yet. */
  get hasPendingEntries(): boolean {
    return !this.broken && this.#readCursor !== this.#loadHead();
  }

  /**
   * Handles one bounded batch of new entries, then writes completions. Returns the number of
   * entries read; call again (after yielding) while hasPendingEntries is true.
   */
  processRing(): number {
    if (this.broken) return 0;
    this.counters.batches += 1;
    this.#inBatch = true;
    let entries = 0;
    try {
      const head = this.#loadHead();
      while (this.#readCursor !== head && entries < this.#entriesPerBatchMax) {
        if (!this.#readEntry(head)) break;
        entries += 1;
      }
    } finally {
      this.#inBatch = false;
    }
    this.#writeCompletions();
    return entries;
  }

  /** Resolves once no command is in flight (used by shutdown and tests). */
  whenIdle(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    if (this.#idleWaiters.length >= IDLE_WAITERS_MAX) throw new Error(`more than ${IDLE_WAITERS_MAX} callers wait for the ring to go idle`);
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Reads the entry at the read cursor; false when it must wait (no free slot) or the ring broke. */
  #readEntry(head: number): boolean {
    const entryOffset = this.cmdrOffset + this.#readCursor;
    const lenOp = this.#view.getUint32(entryOffset + uapi.HDR_LEN_OP_OFFSET, true);
    const lengthBytes = uapi.tcmuHdrGetLen(lenOp);
    const op = uapi.tcmuHdrGetOp(lenOp);
    const posted = this.#distance(this.#readCursor, head);
    if (!entryLengthIsSane(this, this.#readCursor, lengthBytes, op, posted)) {
      this.broken = true;
      this.counters.malformedEntries += 1;
      this.#logger.error(
        `ring entry at ${this.#readCursor} has length ${lengthBytes} (op ${op}, ${posted} bytes posted): ` +
          "the ring is corrupt; this device stops until action/reset_ring",
      );
      return false;
    }

    if (op === uapi.TCMU_OP_CMD) {
      // What the in-flight bounds hold back waits in the ring (counted as throttled).
      const inFlight = this.#inFlight;
      if (!inFlight.hasFreeSlot || (inFlight.bytes > 0 && !inFlight.admits(entryDataBytes(this.#view, entryOffset, lengthBytes)))) {
        this.counters.throttled += 1;
        return false;
      }
      this.#dispatch(entryOffset, lengthBytes);
    } else if (op === uapi.TCMU_OP_PAD) {
      this.counters.padEntries += 1;
    } else if (op === uapi.TCMU_OP_TMR) {
      this.counters.tmrEntries += 1;
      const inFlight = this.#inFlight;
      const wellFormed = forEachTmrCommand(this.#view, entryOffset, lengthBytes, (cmdId) => inFlight.forEachWithId(cmdId, this.#abort));
      if (!wellFormed) {
        this.counters.malformedEntries += 1;
        this.#logger.warn(`TMR entry at ${this.#readCursor} lists more commands than its ${lengthBytes} bytes hold: ignored`);
      }
    } else {
      // tcmu-design: an entry type we do not know gets UNKNOWN_OP and is passed over.
      this.counters.unknownEntries += 1;
      const uflags = this.#view.getUint8(entryOffset + uapi.HDR_UFLAGS_OFFSET);
      this.#view.setUint8(entryOffset + uapi.HDR_UFLAGS_OFFSET, uflags | uapi.TCMU_UFLAG_UNKNOWN_OP);
      this.#logger.warn(`ring entry with unknown opcode ${op} at ${this.#readCursor}: passed over with UNKNOWN_OP`);
    }
    this.#readCursor = (this.#readCursor + lengthBytes) % this.cmdrSizeBytes;
    return true;
  }

  #dispatch(entryOffset: number, lengthBytes: number): void {
    const command = this.#inFlight.take();
    command.cmdId = this.#view.getUint16(entryOffset + uapi.HDR_CMD_ID_OFFSET, true);
    this.counters.commands += 1;
    const problem = readRequest(this, this.#view, this.#memory, entryOffset, lengthBytes, command);
    if (!this.#inFlight.admit(command, command.data.totalBytes + command.bidiData.totalBytes)) {
      this.#logger.warn(`cmd_id ${command.cmdId} posted twice while in flight`);
    }
    if (problem !== undefined) {
      command.malformed = true;
      this.counters.malformedEntries += 1;
      this.#logger.warn(`cmd_id ${command.cmdId} at ring offset ${this.#readCursor}: ${problem}; failed with CHECK CONDITION`);
      this.#executor.failInternally(command, "malformed-entry");
      this.#complete(command);
      return;
    }
    let result: void | Promise<void>;
    try {
      result = this.#executor.execute(command);
    } catch (error) {
      this.#failFromException(command, error);
      this.#complete(command);
      return;
    }
    if (result === undefined) this.#complete(command);
    else result.then(this.#onSettled[command.slotIndex], this.#onFailed[command.slotIndex]);
  }

  #failFromException(command: ScsiCommand, error: unknown): void {
    this.#logger.error(`cmd_id ${command.cmdId} opcode 0x${command.opcode.toString(16)} failed internally: ${String(error)}`);
    command.dataInBytes = NO_DATA_IN;
    this.#executor.failInternally(command, "internal-error");
  }

  /** A command's reply is final: zero what Data-In it left unfilled and queue the completion. */
  #complete(command: ScsiCommand): void {
    this.#inFlight.markDone(command);
    if (command.dataInBytes !== NO_DATA_IN) {
      const buffer = command.dataIn;
      if (command.dataInBytes > buffer.totalBytes) command.dataInBytes = buffer.totalBytes;
      // Data pages are reused without zeroing: bytes we did not write would reach the initiator.
      if (command.dataInBytes < buffer.totalBytes) buffer.fill(0, command.dataInBytes);
    }
    this.#completed.push(command);
    if (!this.#inBatch && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        this.#writeCompletions();
        if (this.hasPendingEntries) this.onPendingWork();
      });
    }
  }

  /** Writes queued completions into ring slots from cmd_tail on, publishes cmd_tail, rings once. */
  #writeCompletions(): void {
    const startTail = this.#tailCursor;
    let tail = startTail;
    while (tail !== this.#readCursor) {
      const entryOffset = this.cmdrOffset + tail;
      const lenOp = this.#view.getUint32(entryOffset + uapi.HDR_LEN_OP_OFFSET, true);
      if (uapi.tcmuHdrGetOp(lenOp) === uapi.TCMU_OP_CMD) {
        // Under OOOC any finished command may take this slot; otherwise only the slot's own.
        const slotIndex = this.#outOfOrder
          ? this.#completed.takeOldest()
          : this.#completed.takeWithId(this.#view.getUint16(entryOffset + uapi.HDR_CMD_ID_OFFSET, true), this.#slotOf);
        if (slotIndex < 0) break;
        const command = this.#inFlight.slot(slotIndex);
        this.#writeResponse(entryOffset, command);
        this.#inFlight.release(command);
      }
      tail = (tail + uapi.tcmuHdrGetLen(lenOp)) % this.cmdrSizeBytes;
    }
    if (tail === startTail) return;
    this.#tailCursor = tail;
    Atomics.store(this.#mailboxWords, uapi.MAILBOX_CMD_TAIL_OFFSET / 4, tail);
    this.counters.doorbells += 1;
    this.#doorbell();
    if (this.inFlightCount === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #writeResponse(entryOffset: number, command: ScsiCommand): void {
    const view = this.#view;
    let uflags = 0;
    let readLength = 0;
    if (command.dataInBytes !== NO_DATA_IN && this.#readLenSupported && command.dataInBytes < command.dataIn.totalBytes) {
      uflags |= uapi.TCMU_UFLAG_READ_LEN;
      readLength = command.dataInBytes;
    }
    view.setUint16(entryOffset + uapi.HDR_CMD_ID_OFFSET, command.cmdId, true);
    view.setUint8(entryOffset + uapi.HDR_UFLAGS_OFFSET, uflags);
    view.setUint8(entryOffset + uapi.RSP_SCSI_STATUS_OFFSET, command.status);
    view.setUint32(entryOffset + uapi.RSP_READ_LEN_OFFSET, readLength, true);
    if (command.status === SAM_STAT_CHECK_CONDITION) {
      // All 96 bytes: the slot still holds request bytes, and the kernel copies the whole buffer.
      this.#memory.set(command.sense, entryOffset + uapi.RSP_SENSE_BUFFER_OFFSET);
    }
  }

  #distance(from: number, to: number): number {
    return (to - from + this.cmdrSizeBytes) % this.cmdrSizeBytes;
  }

  #loadHead(): number {
    return Atomics.load(this.#mailboxWords, uapi.MAILBOX_CMD_HEAD_OFFSET / 4) >>> 0;
  }

  #loadTail(): number {
    return Atomics.load(this.#mailboxWords, uapi.MAILBOX_CMD_TAIL_OFFSET / 4) >>> 0;
  }
}
