import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ENOSYS, EPERM } from "../../src/libc/errno.ts";
import * as libc from "../../src/libc/libc.ts";
import { IoUring, IoUringError } from "../../src/io-uring/ring.ts";
import { IORING_OP_FSYNC, IORING_OP_READV, IORING_OP_WRITEV } from "../../src/io-uring/uapi.ts";
import { MappedBuffer, makeTempDir } from "../backstores/support.ts";

/** io_uring may be refused (seccomp, kernel.io_uring_disabled): then only the refusal is checked. */
let available = true;
let refusal: unknown;
beforeAll(() => {
  try {
    IoUring.open(8).close();
  } catch (error) {
    available = false;
    refusal = error;
  }
});

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function ring(entries = 8): IoUring {
  const opened = IoUring.open(entries);
  cleanups.push(() => opened.close());
  return opened;
}

/** One iovec {base, length} in its own mapping (an address that never moves). */
function iovecFor(buffer: MappedBuffer, lengthBytes: number): number {
  const iovec = new MappedBuffer(16);
  cleanups.push(() => iovec.release());
  const words = new Uint32Array(iovec.bytes.buffer, iovec.bytes.byteOffset, 4);
  words[0] = buffer.address % 0x1_0000_0000;
  words[1] = Math.floor(buffer.address / 0x1_0000_0000);
  words[2] = lengthBytes;
  return iovec.address;
}

function reapAll(uring: IoUring): [number, number][] {
  const seen: [number, number][] = [];
  uring.reap((token, result) => seen.push([token, result]));
  return seen;
}

describe("io_uring", () => {
  test("either sets up, or is refused with a reason the fallback can log", () => {
    if (available) {
      const uring = ring(8);
      expect(uring.sqEntries).toBe(8);
      expect(uring.cqEntries).toBe(16);
      return;
    }
    expect(refusal).toBeInstanceOf(IoUringError);
    expect([ENOSYS, EPERM]).toContain((refusal as IoUringError).errno);
  });

  test("a NOP comes back with its token; one enter submits a whole batch", () => {
    if (!available) return;
    const uring = ring(8);
    for (let token = 1; token <= 5; token += 1) uring.prepareNop(token * 1000);
    expect(uring.unsubmitted).toBe(5);
    expect(uring.sqSpace).toBe(3);
    expect(uring.submit(5)).toBe(5);
    expect(reapAll(uring)).toEqual([1000, 2000, 3000, 4000, 5000].map((token) => [token, 0]));
    expect(uring.sqSpace).toBe(8);
    expect(() => {
      for (let token = 0; token < 9; token += 1) uring.prepareNop(token);
    }).toThrow("submission queue full");
  });

  test("WRITEV, FSYNC and READV move data between a file and mapped memory", () => {
    if (!available) return;
    const uring = ring(8);
    const directory = makeTempDir();
    cleanups.push(directory.remove);
    const fd = libc.open(`${directory.path}/data`, libc.O_RDWR | libc.O_CREAT);
    cleanups.push(() => libc.close(fd));
    const buffer = new MappedBuffer(8192);
    cleanups.push(() => buffer.release());
    const iovec = iovecFor(buffer, 8192);
    buffer.bytes.fill(0x42);
    uring.prepareWritev(fd, iovec, 1, 4096, libc.RWF_DSYNC, 1);
    uring.prepareFsync(fd, true, 2);
    uring.submit(2);
    const written = reapAll(uring);
    expect(written.map(([token]) => token).sort()).toEqual([1, 2]);
    expect(written.find(([token]) => token === 1)![1]).toBe(8192);
    buffer.bytes.fill(0);
    uring.prepareReadv(fd, iovec, 1, 4096, 3);
    uring.submit(1);
    expect(reapAll(uring)).toEqual([[3, 8192]]);
    expect(buffer.bytes.every((byte) => byte === 0x42)).toBe(true);
    // Past the end of the file: 0 bytes, not an error.
    uring.prepareReadv(fd, iovec, 1, 1 << 20, 4);
    uring.submit(1);
    expect(reapAll(uring)).toEqual([[4, 0]]);
    // A bad descriptor fails in its CQE, not in the submit.
    uring.prepareReadv(-1, iovec, 1, 0, 5);
    uring.submit(1);
    expect(reapAll(uring)).toEqual([[5, -9]]);
  });

  test("the kernel has the opcodes the file store needs", () => {
    if (!available) return;
    const supported = ring().supportedOpcodes();
    if (supported === undefined) return; // before 5.6: no probe, and 5.1+ has them all
    for (const opcode of [IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC]) expect(supported.has(opcode)).toBe(true);
  });

  test("a registered eventfd is signalled per completion unless signalling is off", () => {
    if (!available) return;
    const uring = ring();
    const eventFd = libc.eventfd(0, libc.EFD_NONBLOCK);
    cleanups.push(() => libc.close(eventFd));
    uring.registerEventfd(eventFd);
    const counter = new BigUint64Array(1);
    const drain = () => (libc.readNonBlocking(eventFd, counter, 8) < 0 ? 0n : counter[0]!);
    uring.prepareNop(1);
    uring.submit(1);
    reapAll(uring);
    expect(drain()).toBe(1n);
    if (!uring.setEventfdSignalling(false)) return; // before 5.8
    uring.prepareNop(2);
    uring.submit(1);
    uring.setEventfdSignalling(true);
    expect(reapAll(uring)).toEqual([[2, 0]]);
    expect(drain()).toBe(0n);
  });
});
