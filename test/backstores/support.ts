// Helpers for backstore tests: data buffers in mapped memory (so preadv/pwritev can aim at a
// stable address), unique RAM keys, temporary image directories, and a syscall layer that
// injects faults at chosen offsets the way a failing disk would.
import { toArrayBuffer } from "bun:ffi";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LIBC_SYSCALLS, type StoreSyscalls } from "../../backstores/file/syscalls.ts";
import { SystemCallError } from "../../src/libc/errno.ts";
import { mmapAnonymous, munmap } from "../../src/libc/libc.ts";
import { DataSegments } from "../../src/ring/data-segments.ts";

/** A buffer in its own anonymous mapping, with a DataSegments list over it. */
export class MappedBuffer {
  readonly bytes: Uint8Array;
  readonly address: number;
  readonly #lengthBytes: number;

  constructor(lengthBytes: number) {
    this.#lengthBytes = lengthBytes;
    this.address = mmapAnonymous(lengthBytes);
    this.bytes = new Uint8Array(toArrayBuffer(this.address, 0, lengthBytes));
  }

  /** Segments covering [offset, offset + length) as pieces of `pieceBytes` (gaps between them when `strideBytes` is larger). */
  segments(lengthBytes: number, pieceBytes = lengthBytes, strideBytes = pieceBytes, offsetBytes = 0): DataSegments {
    const segments = new DataSegments(this.bytes, this.address);
    let position = offsetBytes;
    for (let done = 0; done < lengthBytes; done += pieceBytes) {
      segments.push(position, Math.min(pieceBytes, lengthBytes - done));
      position += strideBytes;
    }
    return segments;
  }

  release(): void {
    munmap(this.address, this.#lengthBytes);
  }
}

let keyCounter = 0;

/** A device key no other test (or test run) uses, so /dev/shm files never collide. */
export function uniqueDeviceKey(name: string): string {
  keyCounter += 1;
  return `test_${process.pid}/${name}-${keyCounter}-${Date.now()}`;
}

export function makeTempDir(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), "tcmu-backstore-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export type FaultyCall = "preadv" | "pwritev" | "fdatasync" | "fallocate" | "ioctl";

export interface Fault {
  call: FaultyCall;
  errno: number;
  /** Fails only calls whose byte range covers this offset (fdatasync has no range: always). */
  atOffsetBytes?: number;
  /** fallocate: fails only for this mode. */
  mode?: number;
  /** How many times it fires; unlimited when absent. */
  times?: number;
}

/** libc, with faults injected and calls recorded. */
export class FaultySyscalls implements StoreSyscalls {
  readonly faults: Fault[] = [];
  readonly calls: { call: FaultyCall | "lseek"; offsetBytes: number; lengthBytes: number; flags: number }[] = [];
  /** When set, preadv/pwritev move at most this many bytes per call (short transfers). */
  transferBytesMax: number | undefined;

  preadv(fd: number, iovecs: Uint32Array, count: number, offsetBytes: number): number {
    const lengthBytes = totalLength(iovecs, count);
    this.calls.push({ call: "preadv", offsetBytes, lengthBytes, flags: 0 });
    const fault = this.#take("preadv", offsetBytes, Math.min(lengthBytes, this.transferBytesMax ?? lengthBytes));
    if (fault !== undefined) return -fault.errno;
    const [words, cut] = this.#shorten(iovecs, count);
    return LIBC_SYSCALLS.preadv(fd, words, cut, offsetBytes);
  }

  pwritev(fd: number, iovecs: Uint32Array, count: number, offsetBytes: number, flags: number): number {
    const lengthBytes = totalLength(iovecs, count);
    this.calls.push({ call: "pwritev", offsetBytes, lengthBytes, flags });
    const fault = this.#take("pwritev", offsetBytes, Math.min(lengthBytes, this.transferBytesMax ?? lengthBytes));
    if (fault !== undefined) return -fault.errno;
    const [words, cut] = this.#shorten(iovecs, count);
    return LIBC_SYSCALLS.pwritev(fd, words, cut, offsetBytes, flags);
  }

  fdatasync(fd: number, subject: string): void {
    this.calls.push({ call: "fdatasync", offsetBytes: 0, lengthBytes: 0, flags: 0 });
    const fault = this.#take("fdatasync", undefined, 0);
    if (fault !== undefined) throw new SystemCallError("fdatasync", subject, fault.errno);
    LIBC_SYSCALLS.fdatasync(fd, subject);
  }

  fallocate(fd: number, mode: number, offsetBytes: number, lengthBytes: number, subject: string): void {
    this.calls.push({ call: "fallocate", offsetBytes, lengthBytes, flags: mode });
    const fault = this.#take("fallocate", offsetBytes, lengthBytes, mode);
    if (fault !== undefined) throw new SystemCallError("fallocate", subject, fault.errno);
    LIBC_SYSCALLS.fallocate(fd, mode, offsetBytes, lengthBytes, subject);
  }

  ioctl(fd: number, request: number, argument: BigUint64Array, subject: string): void {
    this.calls.push({ call: "ioctl", offsetBytes: Number(argument[0] ?? 0n), lengthBytes: Number(argument[1] ?? 0n), flags: request });
    const fault = this.#take("ioctl", undefined, 0);
    if (fault !== undefined) throw new SystemCallError("ioctl", subject, fault.errno);
    LIBC_SYSCALLS.ioctl(fd, request, argument, subject);
  }

  lseek(fd: number, offsetBytes: number, whence: number): number {
    this.calls.push({ call: "lseek", offsetBytes, lengthBytes: 0, flags: whence });
    return LIBC_SYSCALLS.lseek(fd, offsetBytes, whence);
  }

  callsOf(call: FaultyCall | "lseek") {
    return this.calls.filter((entry) => entry.call === call);
  }

  #take(call: FaultyCall, offsetBytes: number | undefined, lengthBytes: number, mode?: number): Fault | undefined {
    const index = this.faults.findIndex(
      (fault) =>
        fault.call === call &&
        (fault.mode === undefined || fault.mode === mode) &&
        (fault.atOffsetBytes === undefined ||
          offsetBytes === undefined ||
          (fault.atOffsetBytes >= offsetBytes && fault.atOffsetBytes < offsetBytes + lengthBytes)),
    );
    if (index < 0) return undefined;
    const fault = this.faults[index]!;
    if (fault.times !== undefined) {
      fault.times -= 1;
      if (fault.times === 0) this.faults.splice(index, 1);
    }
    return fault;
  }

  /** A copy of the iovecs cut to transferBytesMax, as a device that moves less than asked. */
  #shorten(iovecs: Uint32Array, count: number): [Uint32Array, number] {
    if (this.transferBytesMax === undefined) return [iovecs, count];
    const words = iovecs.slice(0, count * 4);
    let left = this.transferBytesMax;
    for (let index = 0; index < count; index += 1) {
      const length = words[index * 4 + 2]!;
      if (left === 0) return [words, index];
      if (length > left) words[index * 4 + 2] = left;
      left -= Math.min(length, left);
    }
    return [words, count];
  }
}

function totalLength(iovecs: Uint32Array, count: number): number {
  let total = 0;
  for (let index = 0; index < count; index += 1) total += iovecs[index * 4 + 2]! + iovecs[index * 4 + 3]! * 0x1_0000_0000;
  return total;
}

/** INFORMATION of fixed- or descriptor-format sense (the failing LBA). */
export function senseInformation(sense: Uint8Array): number {
  const view = new DataView(sense.buffer, sense.byteOffset, sense.byteLength);
  if ((sense[0]! & 0x7f) === 0x72) return Number(view.getBigUint64(8 + 4, false));
  return view.getUint32(3, false);
}

/** What a child process printed up to the end of its first line (or all of it, if it ended first). */
export async function firstLineOf(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let said = "";
  while (!said.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    said += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return said;
}
