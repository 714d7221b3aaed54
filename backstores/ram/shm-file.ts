// Where a RAM store keeps its bytes: a sparse file on tmpfs (/dev/shm). A named file survives the
// handler (kill -9 included) and is found again by the device's key; a store without a key gets
// an unnamed O_TMPFILE that vanishes with its descriptor.
import * as libc from "../../src/libc/libc.ts";

export const SHM_DIRECTORY = "/dev/shm";
export const SHM_FILE_PREFIX = "tcmu-appliance-";
/** NAME_MAX is 255; the readable part of the name is cut well below it. */
const READABLE_KEY_CHARS_MAX = 160;
/** O_TMPFILE (__O_TMPFILE | O_DIRECTORY on x86_64): an unnamed file in the given directory. */
const O_TMPFILE = 0o20200000;
const SHM_FILE_MODE = 0o600;

/**
 * The shared-memory file name for a device key such as "user_1/disk0". The readable part maps
 * every character outside [A-Za-z0-9._-] to "_", so "user_1/disk0" and "user_1_disk0" would
 * meet; the FNV-1a hash of the exact key keeps them apart.
 */
export function shmFileName(deviceKey: string): string {
  const readable = deviceKey.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, READABLE_KEY_CHARS_MAX);
  return `${SHM_FILE_PREFIX}${readable}-${fnv1a32Hex(deviceKey)}`;
}

export function shmFilePath(deviceKey: string, directory = SHM_DIRECTORY): string {
  return `${directory}/${shmFileName(deviceKey)}`;
}

/** Opens (creating if missing) the named file, or an unnamed one when `path` is undefined. */
export function openShmFile(path: string | undefined, directory: string): number {
  if (path === undefined) return libc.open(directory, libc.O_RDWR | O_TMPFILE, SHM_FILE_MODE);
  return libc.open(path, libc.O_RDWR | libc.O_CREAT, SHM_FILE_MODE);
}

/** The ranges of the file that hold data, from SEEK_DATA/SEEK_HOLE, up to `endBytes`. */
export function* dataRanges(fd: number, endBytes: number): Generator<[startBytes: number, endBytes: number]> {
  let position = 0;
  while (position < endBytes) {
    const dataStart = libc.lseekRaw(fd, position, libc.SEEK_DATA);
    if (dataStart < 0 || dataStart >= endBytes) return; // -ENXIO: no data after `position`
    const holeStart = libc.lseekRaw(fd, dataStart, libc.SEEK_HOLE);
    const dataEnd = holeStart < 0 ? endBytes : Math.min(holeStart, endBytes);
    yield [dataStart, dataEnd];
    position = dataEnd;
  }
}

function fnv1a32Hex(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}
