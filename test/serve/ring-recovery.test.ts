import { expect, test } from "bun:test";
import * as uapi from "../../src/ring/uapi.ts";
import { configfsRingActions, recoverRing, ringPositions, RESET_RING_RETRYABLE, type RingActions } from "../../src/serve/ring-recovery.ts";
import type { UioDevice } from "../../src/uio/uio-device.ts";

const RING_BYTES = 4096;

/** A mailbox as the kernel leaves it, with a doorbell that logs, standing in for /dev/uioN. */
function fakeUio(head: number, tail: number, calls: string[]): UioDevice {
  const memory = new Uint8Array(uapi.MAILBOX_SIZE + RING_BYTES);
  const view = new DataView(memory.buffer);
  view.setUint16(uapi.MAILBOX_VERSION_OFFSET, uapi.TCMU_MAILBOX_VERSION, true);
  view.setUint32(uapi.MAILBOX_CMDR_OFF_OFFSET, uapi.MAILBOX_SIZE, true);
  view.setUint32(uapi.MAILBOX_CMDR_SIZE_OFFSET, RING_BYTES, true);
  view.setUint32(uapi.MAILBOX_CMD_HEAD_OFFSET, head, true);
  view.setUint32(uapi.MAILBOX_CMD_TAIL_OFFSET, tail, true);
  return { memory, ringDoorbell: () => calls.push("doorbell") } as unknown as UioDevice;
}

function recorder(calls: string[]): RingActions {
  return {
    block: async () => void calls.push("block"),
    unblock: async () => void calls.push("unblock"),
    resetRing: async () => void calls.push("reset"),
  };
}

test("an empty ring is taken over as it is: doorbell first (reaps published completions), then unblock", async () => {
  const calls: string[] = [];
  expect(await recoverRing(fakeUio(512, 512, calls), recorder(calls))).toEqual({ resetBytes: 0 });
  expect(calls).toEqual(["doorbell", "unblock"]);
});

test("a ring with a dead handler's commands is blocked, reset (BUSY: the initiator retries) and unblocked", async () => {
  const calls: string[] = [];
  expect(await recoverRing(fakeUio(1024, 512, calls), recorder(calls))).toEqual({ resetBytes: 512 });
  expect(calls).toEqual(["doorbell", "block", "reset", "unblock"]);
});

test("the pending bytes count across the ring's wrap", async () => {
  const calls: string[] = [];
  expect((await recoverRing(fakeUio(64, 4000, calls), recorder(calls))).resetBytes).toBe(RING_BYTES - 4000 + 64);
});

test("unblock happens even when reset_ring fails", async () => {
  const calls: string[] = [];
  const actions = {
    ...recorder(calls),
    resetRing: async () => {
      throw new Error("EINVAL");
    },
  };
  await expect(recoverRing(fakeUio(8, 0, calls), actions)).rejects.toThrow("EINVAL");
  expect(calls).toEqual(["doorbell", "block", "unblock"]);
});

test("ringPositions() reads head and tail as the kernel keeps them", () => {
  expect(ringPositions(fakeUio(72, 16, []).memory)).toEqual({ head: 72, tail: 16, sizeBytes: RING_BYTES });
});

test("configfsRingActions() writes action/ attributes, and block_dev=0 only while blocked", async () => {
  const files = new Map<string, string>([["/cfg/d0/action/block_dev", "unblocked"]]);
  const writes: string[] = [];
  const io = {
    readAttribute: async (path: string) => files.get(path),
    writeAttribute: async (path: string, value: number) => {
      writes.push(`${path}=${value}`);
      files.set(path, value === 1 && path.endsWith("block_dev") ? "blocked" : "unblocked");
    },
  };
  const actions = configfsRingActions("/cfg/d0", io);
  await actions.unblock();
  expect(writes).toEqual([]);
  await actions.block();
  await actions.resetRing();
  await actions.unblock();
  expect(writes).toEqual(["/cfg/d0/action/block_dev=1", `/cfg/d0/action/reset_ring=${RESET_RING_RETRYABLE}`, "/cfg/d0/action/block_dev=0"]);
});
