// Taking over a ring a previous handler left behind (it was killed, crashed, or stopped).
//
// Why reset and not harvest. The ring still holds everything between cmd_tail and cmd_head, and
// serving those entries again looks attractive, but the entries are not trustworthy: the engine
// writes a completion into a slot (cmd_id, status, read_len and sense overwrite the request's
// iov_cnt, iov_bidi_cnt, cdb_off and iovecs) and only then publishes cmd_tail, so a kill between
// the two leaves request fields half overwritten; worse, under out-of-order completion a slot at
// the tail carries ANOTHER command's cmd_id and the entry of an already-completed command still
// lies past the tail. Re-executing it completes a cmd_id the kernel already freed, which marks
// the ring BROKEN, and the command whose slot was stolen is never completed at all. There is no
// way to tell from the ring which entries are which.
//
// So a ring with commands in it is reset the way the kernel offers (action/block_dev +
// action/reset_ring, as tcmu-runner does): reset_ring=1 completes every command the kernel still
// has outstanding with SAM BUSY, and the initiator retries it (Linux requeues BUSY until the
// command's total time limit, (retries+1) × timeout = 180 s for sd). A write the dead handler
// had half done is simply written again with the same data; nothing is lost and nothing is
// written twice except that same data. Only COMPARE AND WRITE is not idempotent: one that had
// already succeeded answers MISCOMPARE on its retry, as on any transport that retries.
//
// Before looking at the ring, one doorbell write lets the kernel reap completions the dead
// handler published in cmd_tail but never announced (without it those commands would wait for
// our first completion, or time out on an idle device).
import * as uapi from "../ring/uapi.ts";
import type { UioDevice } from "../uio/uio-device.ts";

/** reset_ring value: complete outstanding commands with BUSY so initiators retry them. */
export const RESET_RING_RETRYABLE = 1;

/** configfs writes, so async (see configfs/io.ts for why serve never touches configfs on the event loop). */
export interface RingActions {
  /** action/block_dev = 1: new commands are answered BUSY instead of queued (and reaped ones completed). */
  block(): Promise<void>;
  unblock(): Promise<void>;
  /** action/reset_ring: outstanding commands complete with BUSY; cmd_head = cmd_tail = 0. */
  resetRing(): Promise<void>;
}

export interface RecoveryResult {
  /** Bytes of ring (between cmd_tail and cmd_head) that were handed back to the kernel. */
  resetBytes: number;
}

/** Ring offsets as the kernel keeps them: head written by the kernel, tail by us. */
export function ringPositions(memory: Uint8Array): { head: number; tail: number; sizeBytes: number } {
  const words = new Int32Array(memory.buffer, memory.byteOffset, uapi.MAILBOX_SIZE / 4);
  const view = new DataView(memory.buffer, memory.byteOffset, uapi.MAILBOX_SIZE);
  return {
    head: Atomics.load(words, uapi.MAILBOX_CMD_HEAD_OFFSET / 4) >>> 0,
    tail: Atomics.load(words, uapi.MAILBOX_CMD_TAIL_OFFSET / 4) >>> 0,
    sizeBytes: view.getUint32(uapi.MAILBOX_CMDR_SIZE_OFFSET, true),
  };
}

/**
 * Makes the ring safe to serve from cmd_tail: call after opening /dev/uioN (which proves no
 * other handler has it) and before building the engine, which starts reading at cmd_tail.
 */
export async function recoverRing(uio: UioDevice, actions: RingActions): Promise<RecoveryResult> {
  uio.ringDoorbell();
  const { head, tail, sizeBytes } = ringPositions(uio.memory);
  if (head === tail) {
    // A predecessor stopped gracefully (or died while restarting) leaves the device blocked.
    await actions.unblock();
    return { resetBytes: 0 };
  }
  const resetBytes = (head - tail + sizeBytes) % sizeBytes;
  await actions.block();
  try {
    await actions.resetRing();
  } finally {
    await actions.unblock();
  }
  return { resetBytes };
}

/** RingActions through the device's configfs action/ directory. */
export function configfsRingActions(
  configfsDir: string,
  io: { writeAttribute(path: string, value: number): Promise<void>; readAttribute(path: string): Promise<string | undefined> },
): RingActions {
  const blockDev = `${configfsDir}/action/block_dev`;
  return {
    block: () => io.writeAttribute(blockDev, 1),
    // Only when blocked: the kernel refuses any block_dev write (EINVAL) while the device is
    // still being enabled, which is when an ADDED event makes us attach.
    unblock: async () => {
      if ((await io.readAttribute(blockDev)) === "blocked") await io.writeAttribute(blockDev, 0);
    },
    resetRing: () => io.writeAttribute(`${configfsDir}/action/reset_ring`, RESET_RING_RETRYABLE),
  };
}
