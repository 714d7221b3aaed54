// A test double of the kernel side of TCMU (drivers/target/target_core_user.c): it lays out the
// mailbox, the command ring and the data area in real shared memory and follows the kernel's
// rules — entry sizing, a PAD entry at the ring's end, one byte kept free, data blocks handed out
// lowest-first per command and reused without zeroing, cmd_id allocation, BROKEN on an unknown
// cmd_id, a full ring queueing commands until completions free space. The ring engine runs
// unchanged against it: the doorbell is a function call instead of a write to /dev/uioN.
import { toArrayBuffer } from "bun:ffi";
import { mmapAnonymous, munmap } from "../libc/libc.ts";
import { scsiCommandSize } from "../ring/command.ts";
import type { RingMemory } from "../ring/engine.ts";
import * as uapi from "../ring/uapi.ts";

export const SIM_DATA_BLOCK_BYTES = 4096;
/** Written into every data-in block handed out, standing for stale bytes of earlier commands. */
export const SIM_STALE_BYTE = 0xa5;

export interface KernelSimOptions {
  /** Mailbox + command ring, bytes (the kernel uses 8 MiB; tests use less to wrap often). */
  ringAreaBytes?: number;
  dataBlockCount?: number;
  mailboxFlags?: number;
}

export interface SubmitOptions {
  dataOut?: Uint8Array;
  /** Bytes of Data-In the initiator expects. */
  dataInBytes?: number;
  /**
   * false: Data-In is left in the data area — the completion's dataIn and dataInBuffer are
   * empty and the blocks are not pre-filled with stale bytes. For benchmarks and long runs
   * that check status only: no per-command allocation or copy of the payload.
   */
  gatherDataIn?: boolean;
}

export interface Completion {
  cmdId: number;
  status: number;
  /** The 96-byte sense buffer as the kernel copies it, for CHECK CONDITION; empty otherwise. */
  sense: Uint8Array;
  /** Data-In that reached the initiator: cut to read_len when READ_LEN was set. */
  dataIn: Uint8Array;
  uflags: number;
  /** The whole Data-In buffer as the kernel would gather it, before any read_len cut. */
  dataInBuffer: Uint8Array;
}

interface SimCommand {
  cmdId: number;
  cdb: Uint8Array;
  dataOut: Uint8Array | undefined;
  dataInBytes: number;
  gatherDataIn: boolean;
  blocks: number[];
  /** Data-In iovecs as [offset, length] pairs. */
  dataInSegments: [number, number][];
  resolve: (completion: Completion) => void;
  reject: (error: Error) => void;
}

const CMD_ID_MAX = 0xffff;
const EMPTY = new Uint8Array(0);
const U32_SPAN = 0x1_0000_0000;

/** A u64 little-endian field from a number (< 2^53), without making a BigInt. */
function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % U32_SPAN, true);
  view.setUint32(at + 4, Math.floor(value / U32_SPAN), true);
}

export class KernelSim {
  readonly ring: RingMemory;
  readonly mapBytes: number;
  readonly cmdrOffset = uapi.MAILBOX_SIZE;
  readonly cmdrSizeBytes: number;
  readonly dataAreaOffset: number;
  /** Set like TCMU_DEV_BIT_BROKEN: the handler completed an id we never posted. */
  broken = false;
  /** Called after cmd_head moves: stands for uio_event_notify(). */
  onInterrupt: () => void = () => {};
  doorbellCount = 0;

  readonly #view: DataView;
  readonly #words: Int32Array;
  readonly #dataBlockCount: number;
  readonly #blockInUse: Uint8Array;
  readonly #inFlight = new Map<number, SimCommand>();
  readonly #waiting: { cdb: Uint8Array; options: SubmitOptions; settle: SimCommand["resolve"]; fail: SimCommand["reject"] }[] = [];
  /** Ring offsets of injected entries of an unknown type, which cleaning passes over. */
  readonly #unknownEntries = new Set<number>();
  #lastCleaned = 0;
  #head = 0;
  /** No data block below this index is free (a hint that keeps allocation from rescanning). */
  #lowestFreeBlock = 0;

  constructor(options: KernelSimOptions = {}) {
    const ringAreaBytes = options.ringAreaBytes ?? 64 * 1024;
    this.#dataBlockCount = options.dataBlockCount ?? 1024;
    this.cmdrSizeBytes = ringAreaBytes - this.cmdrOffset;
    this.dataAreaOffset = ringAreaBytes;
    this.mapBytes = ringAreaBytes + this.#dataBlockCount * SIM_DATA_BLOCK_BYTES;
    const address = mmapAnonymous(this.mapBytes);
    const memory = new Uint8Array(toArrayBuffer(address, 0, this.mapBytes));
    this.ring = { memory, baseAddress: address };
    this.#view = new DataView(memory.buffer);
    this.#words = new Int32Array(memory.buffer, 0, uapi.MAILBOX_SIZE / 4);
    this.#blockInUse = new Uint8Array(this.#dataBlockCount);

    const allCapabilities =
      uapi.TCMU_MAILBOX_FLAG_CAP_OOOC |
      uapi.TCMU_MAILBOX_FLAG_CAP_READ_LEN |
      uapi.TCMU_MAILBOX_FLAG_CAP_TMR |
      uapi.TCMU_MAILBOX_FLAG_CAP_KEEP_BUF;
    this.#view.setUint16(uapi.MAILBOX_VERSION_OFFSET, uapi.TCMU_MAILBOX_VERSION, true);
    this.#view.setUint16(uapi.MAILBOX_FLAGS_OFFSET, options.mailboxFlags ?? allCapabilities, true);
    this.#view.setUint32(uapi.MAILBOX_CMDR_OFF_OFFSET, this.cmdrOffset, true);
    this.#view.setUint32(uapi.MAILBOX_CMDR_SIZE_OFFSET, this.cmdrSizeBytes, true);
  }

  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  get queuedCount(): number {
    return this.#waiting.length;
  }

  get headOffset(): number {
    return this.#head;
  }

  get tailOffset(): number {
    return Atomics.load(this.#words, uapi.MAILBOX_CMD_TAIL_OFFSET / 4) >>> 0;
  }

  /** Posts a command; resolves when the handler completes it. */
  submit(cdb: Uint8Array, options: SubmitOptions = {}): Promise<Completion> {
    return new Promise((resolve, reject) => {
      if (this.broken) {
        reject(new Error("ring is broken"));
        return;
      }
      this.#waiting.push({ cdb, options, settle: resolve, fail: reject });
      this.#postWaiting();
    });
  }

  /** The doorbell: the handler wrote 4 bytes to the UIO fd. Cleans completed entries. */
  doorbell = (): void => {
    this.doorbellCount += 1;
    const tail = this.tailOffset;
    if (tail % uapi.TCMU_OP_ALIGN_SIZE !== 0 || tail >= this.cmdrSizeBytes) throw new Error(`handler set cmd_tail to ${tail}`);
    if (this.#distance(this.#lastCleaned, tail) > this.#distance(this.#lastCleaned, this.#head)) {
      throw new Error(`handler moved cmd_tail to ${tail}, past cmd_head ${this.#head}`);
    }
    while (this.#lastCleaned !== tail) {
      const entry = this.cmdrOffset + this.#lastCleaned;
      const lenOp = this.#view.getUint32(entry, true);
      const op = uapi.tcmuHdrGetOp(lenOp);
      const length = uapi.tcmuHdrGetLen(lenOp);
      if (op === uapi.TCMU_OP_CMD) {
        if (!this.#completeEntry(entry)) break;
      } else if (op !== uapi.TCMU_OP_PAD && op !== uapi.TCMU_OP_TMR && !this.#unknownEntries.delete(this.#lastCleaned)) {
        this.broken = true;
        break;
      }
      this.#lastCleaned = (this.#lastCleaned + length) % this.cmdrSizeBytes;
    }
    this.#postWaiting();
  };

  /** Posts a TMR entry naming the given commands (still in the ring), as tcmu_tmr_notify(). */
  postTmr(tmrType: number, cmdIds: number[]): boolean {
    const length = uapi.tcmuTmrEntrySize(cmdIds.length);
    if (!this.#reserve(length)) return false;
    const entry = this.cmdrOffset + this.#head;
    this.ring.memory.fill(0, entry, entry + length);
    this.#view.setUint32(entry, uapi.tcmuHdrLenOp(length, uapi.TCMU_OP_TMR), true);
    this.#view.setUint8(entry + uapi.TMR_TYPE_OFFSET, tmrType);
    this.#view.setUint32(entry + uapi.TMR_CMD_CNT_OFFSET, cmdIds.length, true);
    cmdIds.forEach((id, index) => this.#view.setUint16(entry + uapi.TMR_CMD_IDS_OFFSET + 2 * index, id, true));
    this.#publish(length);
    return true;
  }

  /** Posts an entry of an opcode the handler cannot know (a future kernel's), `lengthBytes` long. */
  postUnknownEntry(op: number, lengthBytes: number): number {
    if (!this.#reserve(lengthBytes)) throw new Error("no ring space for the unknown entry");
    const at = this.#head;
    const entry = this.cmdrOffset + at;
    this.ring.memory.fill(0, entry, entry + lengthBytes);
    this.#view.setUint32(entry, uapi.tcmuHdrLenOp(lengthBytes, op), true);
    this.#unknownEntries.add(at);
    this.#publish(lengthBytes);
    return at;
  }

  /** uflags of the entry at a ring offset (to see UNKNOWN_OP set by the handler). */
  uflagsAt(ringOffset: number): number {
    return this.#view.getUint8(this.cmdrOffset + ringOffset + uapi.HDR_UFLAGS_OFFSET);
  }

  /**
   * Posts a CMD entry written by hand — for tests of malformed entries. `edit` may change the
   * entry after it is laid out normally (entry offset in the map is passed).
   */
  submitRaw(cdb: Uint8Array, options: SubmitOptions, edit: (entryOffset: number, view: DataView) => void): Promise<Completion> {
    return new Promise((resolve, reject) => {
      if (!this.#post(cdb, options, resolve, reject, edit)) reject(new Error("no room for a raw entry"));
    });
  }

  close(): void {
    munmap(this.ring.baseAddress, this.mapBytes);
  }

  #postWaiting(): void {
    while (this.#waiting.length > 0 && !this.broken) {
      const next = this.#waiting[0]!;
      if (!this.#post(next.cdb, next.options, next.settle, next.fail)) return;
      this.#waiting.shift();
    }
  }

  /** queue_cmd_ring(): false when ring space or data blocks are short (the command waits). */
  #post(
    cdb: Uint8Array,
    options: SubmitOptions,
    resolve: SimCommand["resolve"],
    reject: SimCommand["reject"],
    edit?: (entryOffset: number, view: DataView) => void,
  ): boolean {
    const cdbLength = scsiCommandSize(cdb);
    if (cdb.byteLength < cdbLength) throw new Error(`CDB of ${cdb.byteLength} bytes, opcode needs ${cdbLength}`);
    const dataOut = options.dataOut;
    const dataInBytes = options.dataInBytes ?? 0;
    const outBlocks = Math.ceil((dataOut?.byteLength ?? 0) / SIM_DATA_BLOCK_BYTES);
    const inBlocks = Math.ceil(dataInBytes / SIM_DATA_BLOCK_BYTES);
    if (outBlocks + inBlocks > this.#dataBlockCount) {
      reject(new Error("command larger than the data area"));
      return true;
    }
    const blocks = this.#allocateBlocks(outBlocks + inBlocks);
    if (blocks === undefined) return false;
    const outSegments = this.#segments(blocks.slice(0, outBlocks), dataOut?.byteLength ?? 0);
    const inSegments = this.#segments(blocks.slice(outBlocks), dataInBytes);
    const bidi = dataOut !== undefined && dataInBytes > 0;
    const iovCount = outSegments.length + inSegments.length;
    const length = uapi.tcmuCmdEntrySize(iovCount, cdbLength);
    if (length > this.cmdrSizeBytes / 2) {
      this.#freeBlocks(blocks);
      reject(new Error("command entry larger than half the ring"));
      return true;
    }
    const cmdId = this.#allocateCmdId();
    if (cmdId === undefined || !this.#reserve(length)) {
      this.#freeBlocks(blocks);
      return false;
    }

    const entry = this.cmdrOffset + this.#head;
    const view = this.#view;
    const memory = this.ring.memory;
    memory.fill(0, entry, entry + length);
    view.setUint32(entry, uapi.tcmuHdrLenOp(length, uapi.TCMU_OP_CMD), true);
    view.setUint16(entry + uapi.HDR_CMD_ID_OFFSET, cmdId, true);
    view.setUint32(entry + uapi.REQ_IOV_CNT_OFFSET, bidi ? outSegments.length : iovCount, true);
    view.setUint32(entry + uapi.REQ_IOV_BIDI_CNT_OFFSET, bidi ? inSegments.length : 0, true);
    const baseSize = length - uapi.roundUp(cdbLength, uapi.TCMU_OP_ALIGN_SIZE);
    const cdbOffset = entry + baseSize;
    setU64(view, entry + uapi.REQ_CDB_OFF_OFFSET, cdbOffset);
    let iovecAt = entry + uapi.REQ_IOV_OFFSET;
    for (const segments of [outSegments, inSegments]) {
      for (const [offset, segmentLength] of segments) {
        setU64(view, iovecAt, offset);
        setU64(view, iovecAt + 8, segmentLength);
        iovecAt += uapi.IOVEC_SIZE;
      }
    }
    memory.set(cdb.byteLength === cdbLength ? cdb : cdb.subarray(0, cdbLength), cdbOffset);

    // Data-Out is scattered into the blocks; Data-In blocks keep whatever was there before.
    let copied = 0;
    for (const [offset, segmentLength] of outSegments) {
      memory.set(dataOut!.subarray(copied, copied + segmentLength), offset);
      copied += segmentLength;
    }
    const gatherDataIn = options.gatherDataIn ?? true;
    if (gatherDataIn) for (const [offset, segmentLength] of inSegments) memory.fill(SIM_STALE_BYTE, offset, offset + segmentLength);

    edit?.(entry, view);
    this.#inFlight.set(cmdId, {
      cmdId,
      cdb: cdb.slice(0, cdbLength),
      dataOut,
      dataInBytes,
      gatherDataIn,
      blocks,
      dataInSegments: inSegments,
      resolve,
      reject,
    });
    this.#publish(length);
    return true;
  }

  /** Makes room for `length` contiguous bytes at head, inserting a PAD entry at the ring's end. */
  #reserve(length: number): boolean {
    const free = (this.#lastCleaned - this.#head - 1 + this.cmdrSizeBytes) % this.cmdrSizeBytes;
    const toEnd = this.cmdrSizeBytes - this.#head;
    const padBytes = length > toEnd ? toEnd : 0;
    if (padBytes + length > free) return false;
    if (padBytes > 0) {
      const entry = this.cmdrOffset + this.#head;
      this.#view.setUint32(entry, uapi.tcmuHdrLenOp(padBytes, uapi.TCMU_OP_PAD), true);
      this.#view.setUint16(entry + uapi.HDR_CMD_ID_OFFSET, 0, true);
      this.#head = 0;
    }
    return true;
  }

  #publish(length: number): void {
    this.#head = (this.#head + length) % this.cmdrSizeBytes;
    Atomics.store(this.#words, uapi.MAILBOX_CMD_HEAD_OFFSET / 4, this.#head);
    this.onInterrupt();
  }

  /** tcmu_handle_completion(): false when the ring turned BROKEN. */
  #completeEntry(entry: number): boolean {
    const view = this.#view;
    const cmdId = view.getUint16(entry + uapi.HDR_CMD_ID_OFFSET, true);
    const command = this.#inFlight.get(cmdId);
    if (command === undefined) {
      this.broken = true;
      return false;
    }
    this.#inFlight.delete(cmdId);
    const uflags = view.getUint8(entry + uapi.HDR_UFLAGS_OFFSET);
    let status = view.getUint8(entry + uapi.RSP_SCSI_STATUS_OFFSET);
    const readLength = view.getUint32(entry + uapi.RSP_READ_LEN_OFFSET, true);
    const memory = this.ring.memory;
    const dataInBuffer = command.gatherDataIn ? new Uint8Array(command.dataInBytes) : EMPTY;
    let gathered = 0;
    if (command.gatherDataIn) {
      for (const [offset, length] of command.dataInSegments) {
        dataInBuffer.set(memory.subarray(offset, offset + length), gathered);
        gathered += length;
      }
    }
    let sense = EMPTY;
    let dataIn = dataInBuffer;
    const readLengthValid = (uflags & uapi.TCMU_UFLAG_READ_LEN) !== 0 && readLength !== 0 && command.dataInBytes > 0;
    if ((uflags & uapi.TCMU_UFLAG_UNKNOWN_OP) !== 0) {
      status = 0x02;
      dataIn = EMPTY;
    } else {
      if (readLengthValid && readLength < dataIn.byteLength) dataIn = dataIn.slice(0, readLength);
      if (status === 0x02) {
        sense = memory.slice(entry + uapi.RSP_SENSE_BUFFER_OFFSET, entry + uapi.RSP_SENSE_BUFFER_OFFSET + uapi.TCMU_SENSE_BUFFERSIZE);
        if (!readLengthValid) dataIn = EMPTY;
      }
    }
    this.#freeBlocks(command.blocks);
    command.resolve({ cmdId, status, sense, dataIn, uflags, dataInBuffer });
    return true;
  }

  #allocateBlocks(count: number): number[] | undefined {
    const blocks: number[] = [];
    let index = this.#lowestFreeBlock;
    while (index < this.#dataBlockCount && this.#blockInUse[index] !== 0) index += 1;
    this.#lowestFreeBlock = index;
    for (; index < this.#dataBlockCount && blocks.length < count; index += 1) {
      if (this.#blockInUse[index] === 0) blocks.push(index);
    }
    if (blocks.length < count) return undefined;
    for (const block of blocks) this.#blockInUse[block] = 1;
    if (count > 0) this.#lowestFreeBlock = blocks[0]! === this.#lowestFreeBlock ? this.#lowestFreeBlock + 1 : this.#lowestFreeBlock;
    return blocks;
  }

  #freeBlocks(blocks: number[]): void {
    for (const block of blocks) {
      this.#blockInUse[block] = 0;
      if (block < this.#lowestFreeBlock) this.#lowestFreeBlock = block;
    }
  }

  /** One iovec per run of consecutive blocks, the last cut to the transfer length. */
  #segments(blocks: number[], lengthBytes: number): [number, number][] {
    const segments: [number, number][] = [];
    let remaining = lengthBytes;
    for (let index = 0; index < blocks.length && remaining > 0; index += 1) {
      const offset = this.dataAreaOffset + blocks[index]! * SIM_DATA_BLOCK_BYTES;
      const length = Math.min(SIM_DATA_BLOCK_BYTES, remaining);
      const last = segments[segments.length - 1];
      if (last !== undefined && last[0] + last[1] === offset) last[1] += length;
      else segments.push([offset, length]);
      remaining -= length;
    }
    return segments;
  }

  /** The lowest free id, as the kernel's idr_alloc(…, 1, USHRT_MAX) gives: ids are reused at once. */
  #allocateCmdId(): number | undefined {
    for (let id = 1; id <= CMD_ID_MAX; id += 1) if (!this.#inFlight.has(id)) return id;
    return undefined;
  }

  #distance(from: number, to: number): number {
    return (to - from + this.cmdrSizeBytes) % this.cmdrSizeBytes;
  }
}
