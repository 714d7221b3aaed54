// include/uapi/linux/io_uring.h, the parts this program uses (x86_64). Offsets are bytes from the
// start of each struct; the SQE and CQE fields are also given as u32 word indexes, because the
// rings are driven through one Uint32Array view per mapping (every field used is a whole u32
// or a u64 split into two u32 words, low word first).

/** __NR_io_uring_setup / enter / register on x86_64 (5.1+). */
export const SYS_IO_URING_SETUP = 425;
export const SYS_IO_URING_ENTER = 426;
export const SYS_IO_URING_REGISTER = 427;

// mmap offsets of the three regions.
export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x800_0000;
export const IORING_OFF_SQES = 0x1000_0000;

// struct io_uring_params (120 bytes).
export const PARAMS_BYTES = 120;
export const PARAMS_SQ_ENTRIES = 0;
export const PARAMS_CQ_ENTRIES = 4;
export const PARAMS_FLAGS = 8;
export const PARAMS_FEATURES = 20;
export const PARAMS_SQ_OFF = 40;
export const PARAMS_CQ_OFF = 80;

// struct io_sqring_offsets, relative to PARAMS_SQ_OFF.
export const SQ_OFF_HEAD = 0;
export const SQ_OFF_TAIL = 4;
export const SQ_OFF_RING_MASK = 8;
export const SQ_OFF_RING_ENTRIES = 12;
export const SQ_OFF_FLAGS = 16;
export const SQ_OFF_DROPPED = 20;
export const SQ_OFF_ARRAY = 24;

// struct io_cqring_offsets, relative to PARAMS_CQ_OFF.
export const CQ_OFF_HEAD = 0;
export const CQ_OFF_TAIL = 4;
export const CQ_OFF_RING_MASK = 8;
export const CQ_OFF_RING_ENTRIES = 12;
export const CQ_OFF_OVERFLOW = 16;
export const CQ_OFF_CQES = 20;
export const CQ_OFF_FLAGS = 24;

/** io_uring_setup flag: cq_entries in the params is honoured (5.5+). */
export const IORING_SETUP_CQSIZE = 1 << 3;

export const IORING_FEAT_SINGLE_MMAP = 1 << 0;
/** Completions are never dropped when the CQ ring is full; they wait in the kernel (5.5+). */
export const IORING_FEAT_NODROP = 1 << 1;

export const IORING_ENTER_GETEVENTS = 1 << 0;

/** cq flags word: while set, posting a CQE does not signal the registered eventfd (5.8+). */
export const IORING_CQ_EVENTFD_DISABLED = 1 << 0;

export const IORING_REGISTER_EVENTFD = 4;
export const IORING_UNREGISTER_EVENTFD = 5;
export const IORING_REGISTER_PROBE = 8;

// Opcodes (enum io_uring_op).
export const IORING_OP_NOP = 0;
export const IORING_OP_READV = 1;
export const IORING_OP_WRITEV = 2;
export const IORING_OP_FSYNC = 3;

/** fsync_flags: fdatasync rather than fsync. */
export const IORING_FSYNC_DATASYNC = 1 << 0;

// struct io_uring_sqe (64 bytes) as u32 words.
export const SQE_BYTES = 64;
export const SQE_WORDS = SQE_BYTES / 4;
/** opcode (u8) | flags (u8) << 8 | ioprio (u16) << 16 */
export const SQE_WORD_OPCODE = 0;
export const SQE_WORD_FD = 1;
export const SQE_WORD_OFF_LOW = 2;
export const SQE_WORD_OFF_HIGH = 3;
export const SQE_WORD_ADDR_LOW = 4;
export const SQE_WORD_ADDR_HIGH = 5;
export const SQE_WORD_LEN = 6;
/** rw_flags (RWF_*) or fsync_flags: one u32 union. */
export const SQE_WORD_OP_FLAGS = 7;
export const SQE_WORD_USER_DATA_LOW = 8;
export const SQE_WORD_USER_DATA_HIGH = 9;

// struct io_uring_cqe (16 bytes) as u32 words.
export const CQE_BYTES = 16;
export const CQE_WORDS = CQE_BYTES / 4;
export const CQE_WORD_USER_DATA_LOW = 0;
/** res (s32): bytes transferred, or -errno. */
export const CQE_WORD_RES = 2;

// struct io_uring_probe: 16-byte header (u8 last_op, u8 ops_len, ...), then 8-byte entries
// struct io_uring_probe_op { u8 op; u8 resv; u16 flags; u32 resv2 }.
export const PROBE_HEADER_BYTES = 16;
export const PROBE_OP_BYTES = 8;
export const PROBE_OP_FLAGS_OFFSET = 2;
export const IO_URING_OP_SUPPORTED = 1 << 0;
