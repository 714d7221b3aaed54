// The FUA / SYNCHRONIZE CACHE ordering workload, shared by the in-process test
// (concurrency.test.ts) and the data-plane worker test (worker-concurrency.test.ts): 300 rounds,
// each a SYNCHRONIZE CACHE (10 or 16) one time in six, else a write of 1–8 blocks to blocks of
// its own (so "durable" is a plain comparison), FUA one time in three. Each completion checks
// the promise against `durable`, the image of what survives power loss:
//   - a FUA write completes only once it is durable;
//   - SYNCHRONIZE CACHE completes only once every write that had completed when it was issued is.
import { expect } from "bun:test";
import type { Completion, SubmitOptions } from "../../src/sim/kernel-sim.ts";
import { cdbs as scsiCdbs } from "../scsi/helpers.ts";
import * as cdbs from "../support/cdbs.ts";
import type { Prng } from "./scripted-backstore.ts";

const BLOCK_BYTES = 512;
const FUA = 0x08;

interface WriteRecord {
  lba: number;
  data: Uint8Array;
  completed: boolean;
}

export interface FuaWorkload {
  /** Every command's checked completion. */
  pending: Promise<void>[];
  syncs: number;
  /** Completed writes a SYNCHRONIZE CACHE found not durable yet: the cache really is volatile. */
  volatileSeen: number;
}

/** Issues the workload through `submit`; `between` runs after each round (lets the store progress). */
export async function issueFuaWorkload(
  submit: (cdb: Uint8Array, options?: SubmitOptions) => Promise<Completion>,
  durable: Uint8Array,
  prng: Prng,
  seed: number,
  between: () => Promise<void>,
): Promise<FuaWorkload> {
  const isDurable = (write: WriteRecord) =>
    Buffer.compare(durable.subarray(write.lba * BLOCK_BYTES, write.lba * BLOCK_BYTES + write.data.byteLength), write.data) === 0;
  const writes: WriteRecord[] = [];
  const workload: FuaWorkload = { pending: [], syncs: 0, volatileSeen: 0 };
  for (let round = 0; round < 300; round += 1) {
    if (prng.below(6) === 0) {
      const covered = writes.filter((write) => write.completed);
      workload.volatileSeen += covered.filter((write) => !isDurable(write)).length;
      const cdb = prng.below(2) === 0 ? scsiCdbs.syncCache10(0, 0) : scsiCdbs.syncCache16(0, 0);
      workload.syncs += 1;
      workload.pending.push(
        submit(cdb).then((completion) => {
          expect(completion.status).toBe(0);
          for (const write of covered) expect(isDurable(write)).toBe(true);
        }),
      );
    } else {
      const blocks = 1 + prng.below(8);
      const record: WriteRecord = { lba: round * 16, data: cdbs.patternBytes(blocks * BLOCK_BYTES, seed * 1000 + round), completed: false };
      writes.push(record);
      const fua = prng.below(3) === 0;
      workload.pending.push(
        submit(cdbs.write10(record.lba, blocks, fua ? FUA : 0), { dataOut: record.data }).then((completion) => {
          expect(completion.status).toBe(0);
          record.completed = true;
          if (fua) expect(isDurable(record)).toBe(true);
        }),
      );
    }
    await between();
  }
  return workload;
}
