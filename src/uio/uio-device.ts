// Opens /dev/uioN and maps exactly maps/map0/size bytes of it (any other length fails with
// EINVAL). The doorbell is a 4-byte write to the same descriptor: the kernel looks at cmd_tail
// only then.
import { toArrayBuffer } from "bun:ffi";
import { EBUSY } from "../libc/errno.ts";
import * as libc from "../libc/libc.ts";
import { SystemCallError } from "../libc/errno.ts";
import type { RingMemory } from "../ring/engine.ts";

/** toArrayBuffer views reach 4 GiB at most; max_data_area_mb beyond that cannot be served. */
const MAP_BYTES_MAX = 4 * 1024 * 1024 * 1024 - 1;

export class UioDevice implements RingMemory {
  readonly devicePath: string;
  readonly fd: number;
  readonly baseAddress: number;
  readonly mapBytes: number;
  readonly memory: Uint8Array;
  readonly #doorbellWord = new Uint32Array(1);
  #closed = false;

  private constructor(devicePath: string, fd: number, baseAddress: number, mapBytes: number) {
    this.devicePath = devicePath;
    this.fd = fd;
    this.baseAddress = baseAddress;
    this.mapBytes = mapBytes;
    this.memory = new Uint8Array(toArrayBuffer(baseAddress, 0, mapBytes));
  }

  static open(devicePath: string, mapBytes: number): UioDevice {
    if (!Number.isInteger(mapBytes) || mapBytes <= 0 || mapBytes > MAP_BYTES_MAX) {
      throw new Error(`${devicePath}: map size ${mapBytes} bytes is outside 1..${MAP_BYTES_MAX}`);
    }
    let fd: number;
    try {
      fd = libc.open(devicePath, libc.O_RDWR);
    } catch (error) {
      // Kept a SystemCallError: serve retries a busy node for a while (a killed handler's exit).
      if (error instanceof SystemCallError && error.errno === EBUSY) {
        error.message += ": another handler (tcmu-runner or a second serve) already holds this device";
      }
      throw error;
    }
    try {
      const address = libc.mmap(fd, mapBytes, devicePath);
      return new UioDevice(devicePath, fd, address, mapBytes);
    } catch (error) {
      libc.close(fd);
      throw error;
    }
  }

  readonly ringDoorbell = (): void => {
    const written = libc.writeRaw(this.fd, this.#doorbellWord, 4);
    if (written < 0) throw new SystemCallError("write", this.devicePath, -written);
  };

  /** Unmaps and closes. Views over the map must not be touched afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.munmap(this.baseAddress, this.mapBytes);
    libc.close(this.fd);
  }
}
