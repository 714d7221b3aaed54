// One io_uring instance driven from JavaScript: the SQ ring, the CQ ring and the SQE array are
// mapped once and each gets one Uint32Array view; preparing an SQE writes its words in place,
// submit() publishes the SQ tail and makes one io_uring_enter for everything prepared since the
// last one (a batch), and reap() walks the CQ ring. Nothing is allocated per request; user_data
// is a u32 token chosen by the caller.
import { ptr, toArrayBuffer } from "bun:ffi";
import { errnoName } from "../libc/errno.ts";
import * as libc from "../libc/libc.ts";
import { ioUringEnter, ioUringRegister, ioUringSetup, mmapRingRegion } from "./syscalls.ts";
import * as uapi from "./uapi.ts";

/** io_uring_setup or a mapping failed; `errno` says why (ENOSYS: no io_uring, EPERM: disabled). */
export class IoUringError extends Error {
  readonly errno: number;

  constructor(call: string, errno: number) {
    super(`${call}: ${errnoName(errno)}`);
    this.name = "IoUringError";
    this.errno = errno;
  }
}

/** Called once per completion with the request's token and its result (bytes, or -errno). */
export type CompletionHandler = (token: number, result: number) => void;

const U32_SPAN = 0x1_0000_0000;

interface Region {
  address: number;
  bytes: number;
}

export class IoUring {
  readonly fd: number;
  readonly sqEntries: number;
  readonly cqEntries: number;
  readonly features: number;
  readonly #regions: Region[];
  readonly #sq: Uint32Array;
  readonly #cq: Uint32Array;
  readonly #sqes: Uint32Array;
  // Word indexes into the ring views.
  readonly #sqHead: number;
  readonly #sqTail: number;
  readonly #sqMask: number;
  readonly #cqHead: number;
  readonly #cqTail: number;
  readonly #cqMask: number;
  readonly #cqes: number;
  /** Index of the CQ flags word, or -1 on kernels before 5.8 (no IORING_CQ_EVENTFD_DISABLED). */
  readonly #cqFlags: number;
  /** Our SQ tail: SQEs up to here are written; the shared tail moves at submit(). */
  #tail = 0;
  #unsubmitted = 0;
  #closed = false;

  private constructor(fd: number, params: Uint32Array, regions: Region[]) {
    this.fd = fd;
    this.#regions = regions;
    this.sqEntries = params[uapi.PARAMS_SQ_ENTRIES / 4]!;
    this.cqEntries = params[uapi.PARAMS_CQ_ENTRIES / 4]!;
    this.features = params[uapi.PARAMS_FEATURES / 4]!;
    const sqOff = (field: number) => params[(uapi.PARAMS_SQ_OFF + field) / 4]! / 4;
    const cqOff = (field: number) => params[(uapi.PARAMS_CQ_OFF + field) / 4]! / 4;
    const [sqRing, cqRing, sqes] = regions as [Region, Region, Region];
    this.#sq = new Uint32Array(toArrayBuffer(sqRing.address, 0, sqRing.bytes));
    this.#cq = new Uint32Array(toArrayBuffer(cqRing.address, 0, cqRing.bytes));
    this.#sqes = new Uint32Array(toArrayBuffer(sqes.address, 0, sqes.bytes));
    this.#sqHead = sqOff(uapi.SQ_OFF_HEAD);
    this.#sqTail = sqOff(uapi.SQ_OFF_TAIL);
    this.#sqMask = this.#sq[sqOff(uapi.SQ_OFF_RING_MASK)]!;
    this.#cqHead = cqOff(uapi.CQ_OFF_HEAD);
    this.#cqTail = cqOff(uapi.CQ_OFF_TAIL);
    this.#cqMask = this.#cq[cqOff(uapi.CQ_OFF_RING_MASK)]!;
    this.#cqes = cqOff(uapi.CQ_OFF_CQES);
    // Before 5.8 the kernel leaves cq_off.flags 0, which would alias the head word.
    this.#cqFlags = params[(uapi.PARAMS_CQ_OFF + uapi.CQ_OFF_FLAGS) / 4]! === 0 ? -1 : cqOff(uapi.CQ_OFF_FLAGS);
    // SQE i always sits in array slot i: the indirection array is written once.
    const array = sqOff(uapi.SQ_OFF_ARRAY);
    for (let index = 0; index < this.sqEntries; index += 1) this.#sq[array + index] = index;
    this.#tail = Atomics.load(this.#sq, this.#sqTail);
  }

  /** Sets up a ring of `sqEntries` submissions and `cqEntries` completions (powers of two). */
  static open(sqEntries: number, cqEntries: number = 2 * sqEntries): IoUring {
    const params = new Uint32Array(uapi.PARAMS_BYTES / 4);
    params[uapi.PARAMS_FLAGS / 4] = uapi.IORING_SETUP_CQSIZE;
    params[uapi.PARAMS_CQ_ENTRIES / 4] = cqEntries;
    const fd = ioUringSetup(sqEntries, ptr(params));
    if (fd < 0) throw new IoUringError("io_uring_setup", -fd);
    const regions: Region[] = [];
    try {
      const sqRingBytes = params[(uapi.PARAMS_SQ_OFF + uapi.SQ_OFF_ARRAY) / 4]! + 4 * params[uapi.PARAMS_SQ_ENTRIES / 4]!;
      const cqRingBytes = params[(uapi.PARAMS_CQ_OFF + uapi.CQ_OFF_CQES) / 4]! + uapi.CQE_BYTES * params[uapi.PARAMS_CQ_ENTRIES / 4]!;
      const sqesBytes = uapi.SQE_BYTES * params[uapi.PARAMS_SQ_ENTRIES / 4]!;
      for (const [bytes, offset] of [
        [sqRingBytes, uapi.IORING_OFF_SQ_RING],
        [cqRingBytes, uapi.IORING_OFF_CQ_RING],
        [sqesBytes, uapi.IORING_OFF_SQES],
      ] as const) {
        const address = mmapRingRegion(fd, bytes, offset);
        if (address < 0) throw new IoUringError("mmap of the io_uring rings", -address);
        regions.push({ address, bytes });
      }
      return new IoUring(fd, params, regions);
    } catch (error) {
      for (const region of regions) libc.munmap(region.address, region.bytes);
      libc.close(fd);
      throw error;
    }
  }

  /** SQEs that can be prepared now. */
  get sqSpace(): number {
    return this.sqEntries - ((this.#tail - Atomics.load(this.#sq, this.#sqHead)) >>> 0);
  }

  /** Prepared SQEs not yet handed to the kernel. */
  get unsubmitted(): number {
    return this.#unsubmitted;
  }

  /** CQEs waiting to be reaped. */
  get ready(): number {
    return (Atomics.load(this.#cq, this.#cqTail) - this.#cq[this.#cqHead]!) >>> 0;
  }

  /** IORING_OP_READV into `iovecCount` iovecs at `iovecAddress` (which must stay valid until the CQE). */
  prepareReadv(fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number, token: number): void {
    this.#prepare(uapi.IORING_OP_READV, fd, iovecAddress, iovecCount, offsetBytes, 0, token);
  }

  /** IORING_OP_WRITEV; `rwFlags` are RWF_* (RWF_DSYNC for a durable write). */
  prepareWritev(fd: number, iovecAddress: number, iovecCount: number, offsetBytes: number, rwFlags: number, token: number): void {
    this.#prepare(uapi.IORING_OP_WRITEV, fd, iovecAddress, iovecCount, offsetBytes, rwFlags, token);
  }

  /** IORING_OP_FSYNC of the whole file; `dataOnly` makes it fdatasync. */
  prepareFsync(fd: number, dataOnly: boolean, token: number): void {
    this.#prepare(uapi.IORING_OP_FSYNC, fd, 0, 0, 0, dataOnly ? uapi.IORING_FSYNC_DATASYNC : 0, token);
  }

  prepareNop(token: number): void {
    this.#prepare(uapi.IORING_OP_NOP, -1, 0, 0, 0, 0, token);
  }

  /**
   * Publishes the prepared SQEs and enters the kernel once for all of them, optionally waiting
   * for `waitCount` completions. Returns the SQEs consumed, or -errno (EBUSY/EAGAIN: try again
   * after reaping; the SQEs stay queued).
   */
  submit(waitCount = 0): number {
    this.#checkOpen();
    const toSubmit = this.#unsubmitted;
    if (toSubmit === 0 && waitCount === 0) return 0;
    Atomics.store(this.#sq, this.#sqTail, this.#tail);
    const flags = waitCount > 0 ? uapi.IORING_ENTER_GETEVENTS : 0;
    const consumed = ioUringEnter(this.fd, toSubmit, waitCount, flags);
    if (consumed > 0) this.#unsubmitted -= consumed;
    return consumed;
  }

  /** Hands every waiting CQE to `handler`, oldest first; returns how many. */
  reap(handler: CompletionHandler): number {
    const cq = this.#cq;
    let head = cq[this.#cqHead]!;
    let count = 0;
    for (;;) {
      if (head === Atomics.load(cq, this.#cqTail)) return count;
      const at = this.#cqes + (head & this.#cqMask) * uapi.CQE_WORDS;
      const token = cq[at + uapi.CQE_WORD_USER_DATA_LOW]!;
      const result = cq[at + uapi.CQE_WORD_RES]! | 0;
      head = (head + 1) >>> 0;
      // The slot is released before the handler runs, so a handler that submits and reaps
      // again (a short transfer resubmitted) never sees this CQE twice.
      Atomics.store(cq, this.#cqHead, head);
      count += 1;
      handler(token, result);
    }
  }

  /** IORING_REGISTER_EVENTFD: the kernel signals `eventFd` for every CQE posted. */
  registerEventfd(eventFd: number): void {
    const descriptor = new Int32Array([eventFd]);
    const status = ioUringRegister(this.fd, uapi.IORING_REGISTER_EVENTFD, ptr(descriptor), 1);
    if (status < 0) throw new IoUringError("IORING_REGISTER_EVENTFD", -status);
  }

  /**
   * Turns eventfd signalling off and on around a submit whose inline completions are reaped
   * right away (no thread needs waking for those). False where the kernel lacks the flag (<5.8).
   */
  setEventfdSignalling(enabled: boolean): boolean {
    if (this.#cqFlags < 0) return false;
    const flags = this.#cq[this.#cqFlags]!;
    const next = enabled ? flags & ~uapi.IORING_CQ_EVENTFD_DISABLED : flags | uapi.IORING_CQ_EVENTFD_DISABLED;
    if (next !== flags) Atomics.store(this.#cq, this.#cqFlags, next);
    return true;
  }

  /** Which opcodes this kernel supports (IORING_REGISTER_PROBE, 5.6+); undefined before 5.6. */
  supportedOpcodes(): Set<number> | undefined {
    const OPS_MAX = 256;
    const probe = new Uint8Array(uapi.PROBE_HEADER_BYTES + OPS_MAX * uapi.PROBE_OP_BYTES);
    if (ioUringRegister(this.fd, uapi.IORING_REGISTER_PROBE, ptr(probe), OPS_MAX) < 0) return undefined;
    const supported = new Set<number>();
    const opsLength = probe[1]!;
    for (let op = 0; op < opsLength; op += 1) {
      const flags = probe[uapi.PROBE_HEADER_BYTES + op * uapi.PROBE_OP_BYTES + uapi.PROBE_OP_FLAGS_OFFSET]!;
      if ((flags & uapi.IO_URING_OP_SUPPORTED) !== 0) supported.add(op);
    }
    return supported;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const region of this.#regions) libc.munmap(region.address, region.bytes);
    libc.close(this.fd);
  }

  #prepare(opcode: number, fd: number, address: number, length: number, offsetBytes: number, opFlags: number, token: number): void {
    if (this.sqSpace === 0) throw new Error("io_uring submission queue full: the caller must bound requests in flight");
    const sqes = this.#sqes;
    const at = (this.#tail & this.#sqMask) * uapi.SQE_WORDS;
    sqes.fill(0, at, at + uapi.SQE_WORDS);
    sqes[at + uapi.SQE_WORD_OPCODE] = opcode;
    sqes[at + uapi.SQE_WORD_FD] = fd;
    sqes[at + uapi.SQE_WORD_OFF_LOW] = offsetBytes % U32_SPAN;
    sqes[at + uapi.SQE_WORD_OFF_HIGH] = Math.floor(offsetBytes / U32_SPAN);
    sqes[at + uapi.SQE_WORD_ADDR_LOW] = address % U32_SPAN;
    sqes[at + uapi.SQE_WORD_ADDR_HIGH] = Math.floor(address / U32_SPAN);
    sqes[at + uapi.SQE_WORD_LEN] = length;
    sqes[at + uapi.SQE_WORD_OP_FLAGS] = opFlags;
    sqes[at + uapi.SQE_WORD_USER_DATA_LOW] = token;
    this.#tail = (this.#tail + 1) >>> 0;
    this.#unsubmitted += 1;
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("io_uring used after close");
  }
}
