// include/uapi/linux/target_core_user.h, as the current kernel has it (see
// shared/reference/kernel-tcmu.md). Names follow the header; offsets are bytes from the start of
// the struct; all fields are host order (little-endian on x86_64).

export const TCMU_MAILBOX_VERSION = 2;
export const ALIGN_SIZE = 64;
export const TCMU_OP_ALIGN_SIZE = 8;
export const TCMU_OP_MASK = 0x7;
export const TCMU_SENSE_BUFFERSIZE = 96;

// struct tcmu_mailbox (size 128; cmd_tail sits on its own cache line).
export const TCMU_MAILBOX_FLAG_CAP_OOOC = 1 << 0;
export const TCMU_MAILBOX_FLAG_CAP_READ_LEN = 1 << 1;
export const TCMU_MAILBOX_FLAG_CAP_TMR = 1 << 2;
export const TCMU_MAILBOX_FLAG_CAP_KEEP_BUF = 1 << 3;

export const MAILBOX_VERSION_OFFSET = 0; // u16
export const MAILBOX_FLAGS_OFFSET = 2; // u16
export const MAILBOX_CMDR_OFF_OFFSET = 4; // u32
export const MAILBOX_CMDR_SIZE_OFFSET = 8; // u32
export const MAILBOX_CMD_HEAD_OFFSET = 12; // u32, written by the kernel
export const MAILBOX_CMD_TAIL_OFFSET = ALIGN_SIZE; // u32, written by us
export const MAILBOX_SIZE = 128;

// enum tcmu_opcode
export const TCMU_OP_PAD = 0;
export const TCMU_OP_CMD = 1;
export const TCMU_OP_TMR = 2;

// struct tcmu_cmd_entry_hdr (size 8)
export const HDR_LEN_OP_OFFSET = 0; // u32: length | opcode
export const HDR_CMD_ID_OFFSET = 4; // u16
export const HDR_KFLAGS_OFFSET = 6; // u8
export const HDR_UFLAGS_OFFSET = 7; // u8
export const TCMU_CMD_ENTRY_HDR_SIZE = 8;

export const TCMU_UFLAG_UNKNOWN_OP = 0x1;
export const TCMU_UFLAG_READ_LEN = 0x2;
export const TCMU_UFLAG_KEEP_BUF = 0x4;

// struct tcmu_cmd_entry, request side (the union members are not packed).
export const REQ_IOV_CNT_OFFSET = 8; // u32
export const REQ_IOV_BIDI_CNT_OFFSET = 12; // u32
export const REQ_IOV_DIF_CNT_OFFSET = 16; // u32
export const REQ_CDB_OFF_OFFSET = 24; // u64, offset from the start of the map
export const REQ_IOV_OFFSET = 48; // struct iovec[] {u64 iov_base (map offset), u64 iov_len}
export const IOVEC_SIZE = 16;

// struct tcmu_cmd_entry, response side.
export const RSP_SCSI_STATUS_OFFSET = 8; // u8
export const RSP_READ_LEN_OFFSET = 12; // u32
export const RSP_SENSE_BUFFER_OFFSET = 16; // u8[96]
export const TCMU_CMD_ENTRY_SIZE = 112;

// struct tcmu_tmr_entry
export const TMR_TYPE_OFFSET = 8; // u8
export const TMR_CMD_CNT_OFFSET = 12; // u32
export const TMR_CMD_IDS_OFFSET = 32; // u16[]

export const TCMU_TMR_UNKNOWN = 0;
export const TCMU_TMR_ABORT_TASK = 1;
export const TCMU_TMR_ABORT_TASK_SET = 2;
export const TCMU_TMR_CLEAR_ACA = 3;
export const TCMU_TMR_CLEAR_TASK_SET = 4;
export const TCMU_TMR_LUN_RESET = 5;
export const TCMU_TMR_TARGET_WARM_RESET = 6;
export const TCMU_TMR_TARGET_COLD_RESET = 7;
export const TCMU_TMR_LUN_RESET_PRO = 128;

export function tcmuHdrGetOp(lenOp: number): number {
  return lenOp & TCMU_OP_MASK;
}

export function tcmuHdrGetLen(lenOp: number): number {
  return (lenOp & ~TCMU_OP_MASK) >>> 0;
}

export function tcmuHdrLenOp(lengthBytes: number, op: number): number {
  return ((lengthBytes & ~TCMU_OP_MASK) | (op & TCMU_OP_MASK)) >>> 0;
}

/** Bytes a CMD entry takes on the ring: max(48 + 16·iovs, 112) + roundup(cdb, 8), as tcmu_cmd_get_cmd_size. */
export function tcmuCmdEntrySize(iovecCount: number, cdbLengthBytes: number): number {
  const base = Math.max(REQ_IOV_OFFSET + IOVEC_SIZE * iovecCount, TCMU_CMD_ENTRY_SIZE);
  return roundUp(base, TCMU_OP_ALIGN_SIZE) + roundUp(cdbLengthBytes, TCMU_OP_ALIGN_SIZE);
}

export function tcmuTmrEntrySize(commandCount: number): number {
  return roundUp(TMR_CMD_IDS_OFFSET + 2 * commandCount, TCMU_OP_ALIGN_SIZE);
}

export function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

// Generic netlink, family "TCM-USER", version 2, multicast group "config".
export const TCMU_GENL_FAMILY_NAME = "TCM-USER";
export const TCMU_MCGRP_CONFIG = "config";

export const TCMU_CMD_UNSPEC = 0;
export const TCMU_CMD_ADDED_DEVICE = 1;
export const TCMU_CMD_REMOVED_DEVICE = 2;
export const TCMU_CMD_RECONFIG_DEVICE = 3;
export const TCMU_CMD_ADDED_DEVICE_DONE = 4;
export const TCMU_CMD_REMOVED_DEVICE_DONE = 5;
export const TCMU_CMD_RECONFIG_DEVICE_DONE = 6;
export const TCMU_CMD_SET_FEATURES = 7;

export const TCMU_ATTR_UNSPEC = 0;
export const TCMU_ATTR_DEVICE = 1;
export const TCMU_ATTR_MINOR = 2;
export const TCMU_ATTR_PAD = 3;
export const TCMU_ATTR_DEV_CFG = 4;
export const TCMU_ATTR_DEV_SIZE = 5;
export const TCMU_ATTR_WRITECACHE = 6;
export const TCMU_ATTR_CMD_STATUS = 7;
export const TCMU_ATTR_DEVICE_ID = 8;
export const TCMU_ATTR_SUPP_KERN_CMD_REPLY = 9;

// The sizes the header fixes; a wrong constant above breaks these at load time, not on a disk.
assertLayout(MAILBOX_CMD_TAIL_OFFSET + 4 <= MAILBOX_SIZE, "cmd_tail lies inside tcmu_mailbox");
assertLayout(RSP_SENSE_BUFFER_OFFSET + TCMU_SENSE_BUFFERSIZE === TCMU_CMD_ENTRY_SIZE, "sense buffer ends the entry");
assertLayout(REQ_IOV_OFFSET === REQ_CDB_OFF_OFFSET + 24, "iov[] follows cdb_off and two pads");
assertLayout(tcmuCmdEntrySize(0, 16) === 128, "a 16-byte CDB without iovecs takes 128 bytes");
assertLayout(tcmuCmdEntrySize(4, 10) === 112 + 16, "four iovecs fit the 112-byte minimum");

function assertLayout(condition: boolean, what: string): void {
  if (!condition) throw new Error(`uapi layout assertion failed: ${what}`);
}
