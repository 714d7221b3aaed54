// One command slot: everything the ring entry said, copied out before dispatch (with OOOC the
// entry's slot may carry another command's completion later), plus the reply being built.
// Slots are made as the queue depth first needs them and reused; nothing here is allocated per
// command.
import { DataSegments } from "./data-segments.ts";
import { TCMU_SENSE_BUFFERSIZE } from "./uapi.ts";

/** SCSI_MAX_VARLEN_CDB_SIZE: the longest CDB the kernel can hand us. */
export const CDB_LENGTH_MAX = 260;

export const SAM_STAT_GOOD = 0x00;
export const SAM_STAT_CHECK_CONDITION = 0x02;
export const SAM_STAT_CONDITION_MET = 0x04;
export const SAM_STAT_BUSY = 0x08;
export const SAM_STAT_RESERVATION_CONFLICT = 0x18;
export const SAM_STAT_TASK_SET_FULL = 0x28;
export const SAM_STAT_TASK_ABORTED = 0x40;

const SEGMENTS_INITIAL = 8;

/** Marks a command whose reply carries no Data-In (nothing to zero, no READ_LEN). */
export const NO_DATA_IN = -1;

export class ScsiCommand {
  /** Index in the device's slot pool; stable for the slot's life. */
  readonly slotIndex: number;
  cmdId = 0;
  readonly cdb = new Uint8Array(CDB_LENGTH_MAX);
  cdbLength = 0;
  /** The first iov_cnt iovecs: Data-Out, or Data-In for a read-type command. */
  readonly data: DataSegments;
  /** The iov_bidi_cnt iovecs that follow: Data-In of a bidirectional command. */
  readonly bidiData: DataSegments;
  /** Set when the ring entry broke the protocol; the command is failed without being parsed. */
  malformed = false;
  /** Set by a TMR entry naming this command; work not yet started is skipped. */
  aborted = false;

  status = SAM_STAT_GOOD;
  readonly sense = new Uint8Array(TCMU_SENSE_BUFFERSIZE);
  senseLengthBytes = 0;
  /** Bytes of Data-In the reply filled, or NO_DATA_IN. The rest of the buffer is zeroed. */
  dataInBytes = NO_DATA_IN;
  /** Wall-clock start, for latency accounting (performance.now() milliseconds). */
  startedAtMs = 0;

  constructor(slotIndex: number, memory: Uint8Array, baseAddress: number) {
    this.slotIndex = slotIndex;
    // Small to start (most commands carry one or a few iovecs); a slot's lists grow once to
    // what its largest command needed and keep that.
    this.data = new DataSegments(memory, baseAddress, SEGMENTS_INITIAL);
    this.bidiData = new DataSegments(memory, baseAddress, 1);
  }

  /** Clears the reply and the request so the slot can take the next ring entry. */
  reset(): void {
    this.cmdId = 0;
    this.cdbLength = 0;
    this.data.reset();
    this.bidiData.reset();
    this.malformed = false;
    this.aborted = false;
    this.status = SAM_STAT_GOOD;
    if (this.senseLengthBytes > 0) this.sense.fill(0);
    this.senseLengthBytes = 0;
    this.dataInBytes = NO_DATA_IN;
  }

  /** The buffer that Data-In goes to: the bidi list when there is one. */
  get dataIn(): DataSegments {
    return this.bidiData.count > 0 ? this.bidiData : this.data;
  }

  get opcode(): number {
    return this.cdb[0]!;
  }
}

/** Length of a CDB from its opcode, as scsi_command_size() (0x7f: variable length, byte 7 + 8). */
export function scsiCommandSize(cdbFirstBytes: Uint8Array): number {
  const opcode = cdbFirstBytes[0]!;
  if (opcode === 0x7f) return cdbFirstBytes[7]! + 8;
  return COMMAND_SIZE_BY_GROUP[opcode >> 5]!;
}

const COMMAND_SIZE_BY_GROUP = [6, 10, 10, 12, 16, 12, 10, 10] as const;
