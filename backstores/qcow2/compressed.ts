// Compressed clusters: the decompressors (raw deflate, zstd frame by frame)
// with QEMU's success rule — the output must be exactly one cluster — and a bounded LRU cache of
// decompressed clusters, so 4 KiB reads of a 64 KiB compressed cluster decompress it once.
// Decompression never makes much more than one cluster of output: deflate stops at the cluster
// size (plus 2 KiB while looking for the end of an over-long stream) and zstd frames are bounded
// from their headers before they are decoded (a cluster, plus under one 128 KiB block for a
// frame that does not declare its size).
import { BackstoreError } from "../types.ts";
import { hex } from "./fields.ts";
import type { ImageFile } from "./image-file.ts";
import { walkFrame, ZSTD_BLOCK_BYTES_MAX } from "./zstd-frames.ts";

/** QEMU writes and reads raw deflate with windowBits -12 (qcow2-threads.c, qcow.c). */
export const DEFLATE_WINDOW_BITS = 12;
/** zlib's smallest output chunk. */
const DEFLATE_CHUNK_BYTES_MIN = 64;
/** Default budget of the decompressed-cluster cache of one image. */
export const DECOMPRESSED_CACHE_BYTES_DEFAULT = 8 * 1024 * 1024;

/** A decompressor returns the cluster, or why the input is not one. */
export type Decompressor = (input: Uint8Array, clusterBytes: number) => Uint8Array | string;

/**
 * Output a single input byte can add at most: four 258-byte matches (2-bit codes) plus the
 * end of a symbol begun earlier. Used to look for the cluster's end in an over-long stream.
 */
const DEFLATE_BYTES_PER_INPUT_BYTE_MAX = 2048;

/**
 * Raw deflate like QEMU's qcow2_zlib_decompress(): success when the output buffer is full,
 * whether or not the stream ended (the input is only sector-exact), failure when it ends early.
 */
export function inflateCluster(input: Uint8Array, clusterBytes: number): Uint8Array | string {
  const output = inflateLimited(input, clusterBytes);
  if (output === TOO_LONG) return firstClusterOfLongStream(input, clusterBytes);
  if (typeof output === "string") return output;
  if (output.byteLength !== clusterBytes) return `deflate stream ends after ${output.byteLength} of ${clusterBytes} bytes`;
  return output;
}

const TOO_LONG = Symbol("deflate output over the limit");

type NodeZlib = typeof import("node:zlib");
let zlib: NodeZlib | undefined;

/**
 * node:zlib, loaded at the first deflate cluster: imported statically it would be loaded by
 * every data-plane thread (the bundle hoists it), ~1.5 MB each, for images few devices serve.
 */
function loadZlib(): NodeZlib {
  zlib ??= require("node:zlib") as NodeZlib;
  return zlib;
}

/** Inflates what `input` holds (a cut stream is fine) up to `limitBytes` of output. */
function inflateLimited(input: Uint8Array, limitBytes: number): Uint8Array | string | typeof TOO_LONG {
  const { constants: zlibConstants, inflateRawSync } = loadZlib();
  try {
    return inflateRawSync(input, {
      windowBits: DEFLATE_WINDOW_BITS,
      // An input cut at a sector boundary mid-stream is fine once the cluster is complete.
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
      maxOutputLength: limitBytes,
      // One output buffer for the whole cluster, as QEMU inflates: zlib may then copy from
      // anywhere already written (up to deflate's 32 KiB), not only from its 4 KiB window. It
      // also saves joining 16 KiB pieces afterwards.
      chunkSize: Math.max(limitBytes, DEFLATE_CHUNK_BYTES_MIN),
    });
  } catch (error) {
    if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") return TOO_LONG;
    return `deflate: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * A stream that goes on past one cluster: QEMU's inflate stops when its buffer is full and keeps
 * that cluster. The shortest input prefix that yields a whole cluster is found by bisection,
 * each try bounded to a cluster plus what one more input byte can add.
 */
function firstClusterOfLongStream(input: Uint8Array, clusterBytes: number): Uint8Array | string {
  const limitBytes = clusterBytes + DEFLATE_BYTES_PER_INPUT_BYTE_MAX;
  const enough = (prefixBytes: number): boolean => {
    const output = inflateLimited(input.subarray(0, prefixBytes), limitBytes);
    return typeof output !== "object" || output.byteLength >= clusterBytes;
  };
  let low = 1;
  let high = input.byteLength;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (enough(middle)) high = middle;
    else low = middle + 1;
  }
  const output = inflateLimited(input.subarray(0, low), limitBytes);
  if (typeof output === "object" && output.byteLength >= clusterBytes) return output.subarray(0, clusterBytes);
  return "deflate stream overruns the cluster and its start cannot be decoded";
}

/**
 * zstd like QEMU's qcow2_zstd_decompress(): frames are decoded one after another until exactly
 * one cluster is produced; bytes after the last needed frame are ignored.
 */
export function zstdCluster(input: Uint8Array, clusterBytes: number): Uint8Array | string {
  let cluster: Uint8Array | undefined;
  let produced = 0;
  let position = 0;
  while (produced < clusterBytes) {
    const frame = walkFrame(input, position);
    if (frame === undefined) return `zstd: no whole frame at byte ${position} (${produced} of ${clusterBytes} bytes produced)`;
    position = frame.endBytes;
    if (frame.skippable) continue;
    const remaining = clusterBytes - produced;
    if (frame.contentBytes !== undefined && frame.contentBytes > remaining) return `zstd: a frame of ${frame.contentBytes} bytes overruns the cluster (${remaining} left)`;
    // Without a declared size, the block headers bound the output; a frame written by a zstd
    // library has full blocks but the last, so it ends within one block of that bound.
    if (frame.contentBytes === undefined && frame.outputBytesMax >= remaining + ZSTD_BLOCK_BYTES_MAX) {
      return `zstd: a frame without a content size could produce ${frame.outputBytesMax} bytes, far more than the ${remaining} left in the cluster`;
    }
    let output: Uint8Array;
    try {
      output = Bun.zstdDecompressSync(input.subarray(frame.startBytes, frame.endBytes));
    } catch (error) {
      return `zstd: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (output.byteLength > remaining) return `zstd: a frame gives ${output.byteLength} bytes, more than the ${remaining} left in the cluster`;
    if (produced === 0 && output.byteLength === clusterBytes) return output;
    cluster ??= new Uint8Array(clusterBytes);
    cluster.set(output, produced);
    produced += output.byteLength;
  }
  return cluster ?? new Uint8Array(clusterBytes);
}

interface CachedCluster {
  compressedBytes: number;
  data: Uint8Array;
}

/**
 * Reads and decompresses clusters of one image, keeping the most recently used ones. The
 * compressed bytes are read up to the end of the file (QEMU pads past it with zeros; a
 * descriptor starting past the end is MEDIUM ERROR here).
 */
export class CompressedClusterReader {
  readonly file: ImageFile;
  readonly clusterBytes: number;
  readonly capacityClusters: number;
  decompressions = 0;
  readonly #decompress: Decompressor;
  readonly #inputBytesMax: number;
  #input: Uint8Array | undefined;
  readonly #cache = new Map<number, CachedCluster>();

  constructor(file: ImageFile, clusterBytes: number, inputBytesMax: number, decompress: Decompressor, cacheBytes: number) {
    this.file = file;
    this.clusterBytes = clusterBytes;
    this.#inputBytesMax = inputBytesMax;
    this.#decompress = decompress;
    this.capacityClusters = Math.max(1, Math.floor(cacheBytes / clusterBytes));
  }

  /** The decompressed cluster whose data starts at `hostOffsetBytes` and spans `compressedBytes`. */
  cluster(hostOffsetBytes: number, compressedBytes: number, guestOffsetBytes: number): Uint8Array {
    const cached = this.#cache.get(hostOffsetBytes);
    if (cached !== undefined && cached.compressedBytes === compressedBytes) {
      this.#cache.delete(hostOffsetBytes);
      this.#cache.set(hostOffsetBytes, cached);
      return cached.data;
    }
    if (hostOffsetBytes >= this.file.sizeBytes) {
      throw new BackstoreError("read", guestOffsetBytes, `${this.file.path}: compressed cluster at ${hex(hostOffsetBytes)} lies past the end of the file`);
    }
    this.#input ??= new Uint8Array(this.#inputBytesMax);
    const input = this.#input.subarray(0, Math.min(compressedBytes, this.file.sizeBytes - hostOffsetBytes));
    this.file.readOrMediumError(input, hostOffsetBytes, guestOffsetBytes, "compressed cluster");
    this.decompressions += 1;
    const result = this.#decompress(input, this.clusterBytes);
    if (typeof result === "string") {
      throw new BackstoreError("read", guestOffsetBytes, `${this.file.path}: compressed cluster at ${hex(hostOffsetBytes)}: ${result}`);
    }
    if (this.#cache.size >= this.capacityClusters) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.delete(hostOffsetBytes);
    this.#cache.set(hostOffsetBytes, { compressedBytes, data: result });
    return result;
  }

  clear(): void {
    this.#cache.clear();
  }
}
