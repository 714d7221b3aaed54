#!/usr/bin/env bash
# Real-kernel tests of the SCSI command set (issue 3): a 64 MiB RAM device (appliance/ram) with a
# known unit serial, served by the compiled binary, exported through tcm_loop and driven with
# sg3_utils. Every test checks the answer (bytes, decoded fields, sense), not only the exit code.
# Run: scripts/vm/run-vm.sh scripts/vm/guest/scsi.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 44

NAME=scsi0
SIZE=$((64 * 1024 * 1024))
BLOCKS=$((SIZE / 512))
# A targetcli-style serial: VPD 0x80 returns it, VPD 0x83's NAA is 6001405 + its first 25 hex
# digits (spc_gen_naa_6h_vendor_specific).
SERIAL=5a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d
SERIAL_HEX=$(printf '%s' "$SERIAL" | tr -cd '0-9a-f')
NAA="6001405${SERIAL_HEX:0:25}"
W=$VM_SCRATCH/scsi
mkdir -p "$W"

# --- helpers --------------------------------------------------------------------------------
hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; }                  # FILE -> lowercase hex
short() { printf '%s' "$1" | tr '\n' ' ' | head -c 400; }
byte_at() { echo $((0x${1:$(($2 * 2)):2})); }                   # HEX INDEX -> number

# expect_all NAME OUTPUT PATTERN...: PASS when every fixed-string PATTERN is in OUTPUT.
expect_all() {
	local name=$1 output=$2 pattern
	shift 2
	for pattern in "$@"; do
		if ! printf '%s\n' "$output" | grep -qF -- "$pattern"; then
			fail "$name" "no '$pattern' in: $(short "$output")"
			return 1
		fi
	done
	pass "$name"
}

# sg_in FILE LEN CDB...: runs a Data-In CDB with sg_raw, data to FILE; prints sg_raw's output.
sg_in() {
	local file=$1 len=$2
	shift 2
	rm -f "$file"
	sg_raw -r "$len" -o "$file" "$dev" "$@" 2>&1
}

# mode_wce: the WCE bit of the caching page, from MODE SENSE(10) with DBD (8-byte header).
mode_wce() {
	sg_in "$W/ms.bin" 255 5a 08 08 00 00 00 00 00 ff 00 >/dev/null
	local hex
	hex=$(hex_of "$W/ms.bin")
	[ "${hex:16:2}" = 08 ] || { echo "?"; return; }
	echo $((($(byte_at "$hex" 10) >> 2) & 1))
}

# Direct I/O in 64 KiB pieces, positioned in bytes: the page cache must not hide what the
# device holds after UNMAP, WRITE SAME or COMPARE AND WRITE went around it.
write_blocks() { dd if="$1" of="$dev" bs=64k seek=$(($2 * 512)) oflag=direct,seek_bytes status=none; } # FILE LBA
read_blocks() { # FILE LBA COUNT
	dd if="$dev" of="$1" bs=64k skip=$(($2 * 512)) count=$(($3 * 512)) iflag=direct,skip_bytes,count_bytes status=none
}

# lba_status LBA: "<lba_hex> <blocks_hex> <provisioning status>" of the first descriptor.
# --brief prints "Completion condition=N" first (sg3-utils 1.46), then one "LBA blocks status" line per descriptor.
lba_status() { sg_get_lba_status --brief --lba="$1" "$dev" 2>&1 | grep -E '^0x' | head -n 1 | awk '{print $1, $2, $3}'; }

# The disk goes first, while the appliance can still answer what sd sends on removal.
cleanup() {
	unexport_tcm_loop "$NAME" 2>/dev/null
	[ -n "$APPLIANCE_PID" ] && stop_appliance 30
	remove_user_backstore "$NAME" 2>/dev/null
}

# --- setup ----------------------------------------------------------------------------------
create_user_backstore "$NAME" "$SIZE" appliance/ram || { fail setup "configfs refused the backstore"; finish; }
bsdir=$TARGET_CFG/core/$USER_HBA/$NAME
printf '%s\n' "$SERIAL" >"$bsdir/wwn/vpd_unit_serial" || fail setup-serial "could not set wwn/vpd_unit_serial"
HW_MAX=$(cat "$bsdir/attrib/hw_max_sectors")
# What one command may carry: the data area (max_data_area_mb) in blocks, as the kernel bounds it.
DATA_AREA_BLOCKS=$(($(cat "$bsdir/attrib/max_data_area_mb") * 1024 * 1024 / $(cat "$bsdir/attrib/hw_block_size")))
diag "hw_max_sectors=$HW_MAX emulate_write_cache=$(cat "$bsdir/attrib/emulate_write_cache")"
start_appliance || { fail setup "appliance did not start"; cleanup; finish; }
dev=$(export_tcm_loop "$NAME") || { fail setup "no tcm_loop disk"; cleanup; finish; }
diag "disk $dev"
pass setup

# --- INQUIRY and VPD ------------------------------------------------------------------------
expect_all sg_inq "$(sg_inq "$dev" 2>&1)" \
	'Vendor identification: LIO-ORG' 'Product identification: tcmu-appliance' '3PC=1' 'CmdQue=1' 'version=0x06'

expect_all sg_vpd-0x00 "$(sg_vpd --page=0x00 "$dev" 2>&1)" \
	'Unit serial number [sn]' 'Device identification [di]' 'Extended inquiry data [ei]' \
	'Block limits (SBC) [bl]' 'Block device characteristics (SBC) [bdc]' 'Logical block provisioning (SBC) [lbpv]'

expect_all sg_vpd-0x80 "$(sg_vpd --page=0x80 "$dev" 2>&1)" "Unit serial number: $SERIAL"

expect_all sg_vpd-0x83 "$(sg_vpd --page=0x83 "$dev" 2>&1)" \
	'designator type: NAA,  code set: Binary' "0x$NAA" "vendor specific: tcmu-appliance:$SERIAL"

out=$(sg_vpd --page=0xb0 "$dev" 2>&1)
caw_max=$(printf '%s\n' "$out" | sed -n 's/.*Maximum compare and write length: \([0-9]*\) blocks.*/\1/p')
if [ "${caw_max:-0}" -ge 1 ]; then
	expect_all sg_vpd-0xb0 "$out" 'Write same non-zero (WSNZ): 1' "Maximum transfer length: $DATA_AREA_BLOCKS blocks" \
		"Optimal transfer length: $HW_MAX blocks" 'Maximum unmap LBA count: 1048576' 'Maximum unmap block descriptor count: 256' \
		'Maximum write same length: 0x100000 blocks'
else
	fail sg_vpd-0xb0 "no COMPARE AND WRITE length in: $(short "$out")"
fi

expect_all sg_vpd-0xb1 "$(sg_vpd --page=0xb1 "$dev" 2>&1)" 'Non-rotating medium'

expect_all sg_vpd-0xb2 "$(sg_vpd --page=0xb2 "$dev" 2>&1)" \
	'(LBPU): 1' '(LBPWS): 1' '(LBPWS10): 1' '(LBPRZ): 1' '(ANC_SUP): 0'

# Extended INQUIRY data: page length 3Ch; HEADSUP, ORDSUP, SIMPSUP; V_SUP 0 with the cache off.
sg_in "$W/vpd.bin" 255 12 01 86 00 ff 00 >/dev/null
hex=$(hex_of "$W/vpd.bin")
if [ "${hex:0:8}" = 0086003c ] && [ "${hex:10:4}" = 0700 ]; then pass sg_raw-vpd-0x86; else fail sg_raw-vpd-0x86 "got ${hex:0:40}"; fi

# An unsupported VPD page is INVALID FIELD IN CDB at byte 2.
expect_all sg_raw-vpd-unsupported "$(sg_raw -r 255 "$dev" 12 01 b3 00 ff 00 2>&1)" \
	'Illegal Request' 'Invalid field in cdb' 'Error in Command: byte 2'

# --- READ CAPACITY --------------------------------------------------------------------------
expect_all sg_readcap-16 "$(sg_readcap --long "$dev" 2>&1)" \
	"Last LBA=$((BLOCKS - 1))" 'Logical block length=512 bytes' 'lbpme=1, lbprz=1' "Device size: $SIZE bytes"
expect_all sg_readcap-10 "$(sg_readcap "$dev" 2>&1)" "Last LBA=$((BLOCKS - 1))"

# --- MODE SENSE / MODE SELECT ---------------------------------------------------------------
expect_all sg_modes-caching "$(sg_modes --page=8 "$dev" 2>&1)" 'Caching' 'DpoFua=1' 'WP=0'
sdisk=$(ls "/sys/block/${dev#/dev/}/device/scsi_disk/" 2>/dev/null | head -n 1)
cache_type_file=/sys/class/scsi_disk/$sdisk/cache_type
wce0=$(mode_wce)
if [ "$wce0" = 0 ] && [ "$(cat "$cache_type_file" 2>/dev/null)" = "write through" ]; then
	pass wce-initially-off
else
	fail wce-initially-off "WCE=$wce0 cache_type=$(cat "$cache_type_file" 2>/dev/null)"
fi

out=$(sg_wr_mode --page=8 --contents=8,12,4 --mask=0,0,4 "$dev" 2>&1)
if [ "$(mode_wce)" = 1 ]; then pass sg_wr_mode-wce-on; else fail sg_wr_mode-wce-on "WCE not set: $(short "$out")"; fi
out=$(sg_wr_mode --page=8 --contents=8,12,0 --mask=0,0,4 "$dev" 2>&1)
if [ "$(mode_wce)" = 0 ]; then pass sg_wr_mode-wce-off; else fail sg_wr_mode-wce-off "WCE still set: $(short "$out")"; fi

# RCD is not changeable: MODE SELECT must refuse it and change nothing.
rc=0
out=$(sg_wr_mode --page=8 --contents=8,12,5 --mask=0,0,5 "$dev" 2>&1) || rc=$?
if [ "$rc" != 0 ] && [ "$(mode_wce)" = 0 ]; then pass sg_wr_mode-rcd-refused; else fail sg_wr_mode-rcd-refused "rc=$rc $(short "$out")"; fi

# The kernel's own initiator: sd writes the caching page through MODE SELECT and re-reads it.
if [ -w "$cache_type_file" ] && echo "write back" >"$cache_type_file" &&
	[ "$(mode_wce)" = 1 ] && [ "$(cat "$cache_type_file")" = "write back" ] &&
	echo "write through" >"$cache_type_file" && [ "$(mode_wce)" = 0 ]; then
	pass sd-cache_type-roundtrip
else
	fail sd-cache_type-roundtrip "cache_type=$(cat "$cache_type_file" 2>/dev/null) WCE=$(mode_wce)"
fi

# Saved values are not supported: SAVING PARAMETERS NOT SUPPORTED.
expect_all sg_raw-mode-sense-saved "$(sg_raw -r 255 "$dev" 5a 00 c8 00 00 00 00 00 ff 00 2>&1)" 'Illegal Request' 'Saving parameters not supported'

# --- UNMAP, WRITE SAME, GET LBA STATUS -------------------------------------------------------
head -c $((1024 * 1024)) /dev/urandom >"$W/mib.bin"
head -c $((1024 * 1024)) /dev/zero >"$W/zero-mib.bin"
write_blocks "$W/mib.bin" 2048
st=$(lba_status 2048)
if [ "$(echo "$st" | awk '{print $3}')" = 0 ]; then pass sg_get_lba_status-mapped; else fail sg_get_lba_status-mapped "got '$st'"; fi

out=$(sg_unmap --force --lba=2048 --num=2048 "$dev" 2>&1) # --force: no 15 s countdown
read_blocks "$W/back.bin" 2048 2048
st=$(lba_status 2048)
if cmp -s "$W/back.bin" "$W/zero-mib.bin" && [ "$(echo "$st" | awk '{print $3}')" = 1 ] &&
	[ $(($(echo "$st" | awk '{print $2}'))) -ge 2048 ]; then
	pass sg_unmap-deallocates
else
	fail sg_unmap-deallocates "status '$st' $(short "$out")"
fi

head -c 512 /dev/urandom >"$W/pattern.bin"
for _ in $(seq 64); do cat "$W/pattern.bin"; done >"$W/pattern64.bin"
out=$(sg_write_same --10 --in="$W/pattern.bin" --lba=8192 --num=64 "$dev" 2>&1)
read_blocks "$W/back.bin" 8192 64
if cmp -s "$W/back.bin" "$W/pattern64.bin"; then pass sg_write_same-10-pattern; else fail sg_write_same-10-pattern "$(short "$out")"; fi

write_blocks "$W/mib.bin" 12288
out=$(sg_write_same --16 --unmap --lba=12288 --num=2048 "$dev" 2>&1)
read_blocks "$W/back.bin" 12288 2048
st=$(lba_status 12288)
if cmp -s "$W/back.bin" "$W/zero-mib.bin" && [ "$(echo "$st" | awk '{print $3}')" = 1 ]; then
	pass sg_write_same-16-unmap
else
	fail sg_write_same-16-unmap "status '$st' $(short "$out")"
fi

# WRITE SAME with zero blocks is refused (WSNZ=1).
expect_all sg_raw-write-same-zero-blocks "$(head -c 512 /dev/zero | sg_raw -s 512 "$dev" 41 00 00 00 00 00 00 00 00 00 2>&1)" \
	'Illegal Request' 'Invalid field in cdb'

# The block layer's discard goes out as UNMAP too (LBPU, VPD B0 limits).
if [ "$(cat "/sys/block/${dev#/dev/}/queue/discard_max_bytes" 2>/dev/null)" -gt 0 ] &&
	write_blocks "$W/mib.bin" 20480 && blkdiscard -o $((20480 * 512)) -l $((1024 * 1024)) "$dev" &&
	read_blocks "$W/back.bin" 20480 2048 && cmp -s "$W/back.bin" "$W/zero-mib.bin"; then
	pass blkdiscard-unmap
else
	fail blkdiscard-unmap "discard_max_bytes=$(cat "/sys/block/${dev#/dev/}/queue/discard_max_bytes" 2>/dev/null)"
fi

# --- COMPARE AND WRITE ----------------------------------------------------------------------
head -c 512 /dev/urandom >"$W/old.bin"
head -c 512 /dev/urandom >"$W/new.bin"
cat "$W/old.bin" "$W/new.bin" >"$W/caw.bin"
write_blocks "$W/old.bin" 16384
rc=0
out=$(sg_compare_and_write --in="$W/caw.bin" --lba=16384 --num=1 "$dev" 2>&1) || rc=$?
read_blocks "$W/back.bin" 16384 1
if [ "$rc" = 0 ] && cmp -s "$W/back.bin" "$W/new.bin"; then pass sg_compare_and_write-match; else fail sg_compare_and_write-match "rc=$rc $(short "$out")"; fi

# Now the medium holds new.bin: comparing with old.bin again miscompares (exit 14 = sense key
# MISCOMPARE). Byte 5 of the verify data is made the first difference, so the offset is known.
cp "$W/new.bin" "$W/bad-verify.bin"
byte5=$(od -An -tu1 -j5 -N1 "$W/new.bin" | tr -d ' ')
hex_to_file "$(printf '%02x' $((byte5 ^ 0xff)))" "$W/flip.bin"
dd if="$W/flip.bin" of="$W/bad-verify.bin" bs=1 seek=5 conv=notrunc status=none
cat "$W/bad-verify.bin" "$W/old.bin" >"$W/caw-bad.bin"
rc=0
out=$(sg_compare_and_write --in="$W/caw-bad.bin" --lba=16384 --num=1 "$dev" 2>&1) || rc=$?
read_blocks "$W/back.bin" 16384 1
if [ "$rc" = 14 ] && printf '%s' "$out" | grep -q 'Miscompare at byte offset: 5' && cmp -s "$W/back.bin" "$W/new.bin"; then
	pass sg_compare_and_write-miscompare
else
	fail sg_compare_and_write-miscompare "rc=$rc $(short "$out")"
fi
expect_all sg_raw-compare-and-write-sense \
	"$(sg_raw -s 1024 -i "$W/caw-bad.bin" "$dev" 89 00 00 00 00 00 00 00 40 00 00 00 00 01 00 00 2>&1)" \
	'Sense key: Miscompare' 'Miscompare during verify operation' 'Info fld=0x5'

# --- VERIFY, SYNCHRONIZE CACHE --------------------------------------------------------------
expect_all sg_verify-medium "$(sg_verify --lba=0 --count=256 "$dev" 2>&1 && echo verify-ok)" verify-ok
expect_all sg_verify-bytchk "$(sg_verify --lba=16384 --count=1 --ndo=512 --in="$W/new.bin" "$dev" 2>&1 && echo verify-ok)" verify-ok
rc=0
out=$(sg_verify --lba=16384 --count=1 --ndo=512 --in="$W/old.bin" "$dev" 2>&1) || rc=$?
if [ "$rc" = 14 ]; then pass sg_verify-bytchk-miscompare; else fail sg_verify-bytchk-miscompare "rc=$rc $(short "$out")"; fi

expect_all sg_sync "$(sg_sync "$dev" 2>&1 && sg_sync --16 --lba=100 --count=100 "$dev" 2>&1 && echo sync-ok)" sync-ok
rc=0
out=$(sg_sync --lba=$BLOCKS --count=1 "$dev" 2>&1) || rc=$?
# sg3-utils exits 22 (SG_LIB_LBA_OUT_OF_RANGE) for ILLEGAL REQUEST / LBA OUT OF RANGE.
if [ "$rc" = 22 ] && printf '%s' "$out" | grep -q 'LBA out of range'; then pass sg_sync-out-of-range; else fail sg_sync-out-of-range "rc=$rc $(short "$out")"; fi

# --- REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS ---------------------------
sg_opcodes --raw "$dev" >"$W/opcodes.bin" 2>/dev/null
hex=$(hex_of "$W/opcodes.bin")
listed=" "
count=$(((${#hex} / 2 - 4) / 8))
for i in $(seq 0 $((count - 1))); do listed="$listed${hex:$((8 + i * 16)):2} "; done
missing=
for op in 00 03 12 15 1a 1b 1e 25 28 2a 2e 2f 34 35 41 42 55 5a 83 84 88 89 8a 8e 8f 90 91 93 9e a3 a8 aa 08 0a; do
	case $listed in *" $op "*) ;; *) missing="$missing $op" ;; esac
done
if [ "$count" -ge 30 ] && [ -z "$missing" ]; then pass sg_opcodes-all; else fail sg_opcodes-all "$count listed, missing:$missing"; fi

sg_opcodes --raw --opcode=0x89 "$dev" >"$W/op89.bin" 2>/dev/null
hex=$(hex_of "$W/op89.bin")
if [ "${hex:2:2}" = 03 ] && [ "${hex:4:4}" = 0010 ] && [ "${hex:8:2}" = 89 ]; then pass sg_opcodes-one; else fail sg_opcodes-one "got ${hex:0:48}"; fi

sg_opcodes --raw --tmf "$dev" >"$W/tmf.bin" 2>/dev/null
if [ "$(hex_of "$W/tmf.bin" | cut -c1-2)" = 88 ]; then pass sg_opcodes-tmf; else fail sg_opcodes-tmf "got $(hex_of "$W/tmf.bin")"; fi

# --- EXTENDED COPY within the device, RECEIVE COPY RESULTS ----------------------------------
write_blocks "$W/pattern64.bin" 30000
# The NAA designator: bytes 8-23 of VPD 0x83 (its first designator).
naa_hex=$(sg_vpd --page=0x83 --raw "$dev" 2>/dev/null | od -An -v -tx1 | tr -d ' \n' | cut -c17-48)
# Parameter list (SPC-4 6.4.3): header with LIST ID USAGE 11b, 32 bytes of target descriptors
# and 28 of segment descriptors; one E4h target (binary NAA designator: 16 bytes of its 20-byte
# field, then disk block length 512); one 02h block-to-block segment of 64 blocks from LBA 30000
# to LBA 40000.
list=00180020000000000000001c00000000
list=${list}e400000001030010${naa_hex}0000000000000200
list=${list}020000180000000000000040$(printf '%016x%016x' 30000 40000)
hex_to_file "$list" "$W/xcopy.bin"
out=$(sg_raw -s $((${#list} / 2)) -i "$W/xcopy.bin" "$dev" 83 00 00 00 00 00 00 00 00 00 00 00 00 $(printf '%02x' $((${#list} / 2))) 00 00 2>&1)
read_blocks "$W/back.bin" 40000 64
if [ ${#naa_hex} = 32 ] && cmp -s "$W/back.bin" "$W/pattern64.bin"; then pass extended-copy-self; else fail extended-copy-self "naa=$naa_hex $(short "$out")"; fi

out=$(sg_in "$W/rcr.bin" 255 84 03 00 00 00 00 00 00 00 00 00 00 00 ff 00 00)
hex=$(hex_of "$W/rcr.bin")
if [ "${hex:0:8}" = 0000002a ] && [ "${hex:88:4}" = 02e4 ]; then pass receive-copy-results; else fail receive-copy-results "got ${hex:0:96}"; fi

# --- sense for bad CDBs ---------------------------------------------------------------------
expect_all sg_raw-bogus-opcode "$(sg_raw "$dev" c5 00 00 00 00 00 00 00 00 00 2>&1)" \
	'Illegal Request' 'Invalid command operation code'
expect_all sg_raw-bad-field "$(sg_raw -r 96 "$dev" 12 00 80 00 60 00 2>&1)" \
	'Illegal Request' 'Invalid field in cdb' 'Error in Command: byte 2'
expect_all sg_raw-lba-out-of-range "$(sg_raw -r 512 "$dev" 88 00 00 00 00 00 $(printf '%02x %02x %02x %02x' $((BLOCKS >> 24 & 255)) $((BLOCKS >> 16 & 255)) $((BLOCKS >> 8 & 255)) $((BLOCKS & 255))) 00 00 00 01 00 00 2>&1)" \
	'Illegal Request' 'Logical block address out of range'

sg_in "$W/rs.bin" 252 03 00 00 00 fc 00 >/dev/null
hex=$(hex_of "$W/rs.bin")
# Fixed format (70h), sense key NO SENSE, ADDITIONAL SENSE LENGTH 10, ASC/ASCQ 0.
if [ "${hex:0:2}" = 70 ] && [ "${hex:4:2}" = 00 ] && [ "${hex:14:2}" = 0a ] && [ "${hex:24:4}" = 0000 ]; then
	pass request-sense-no-sense
else
	fail request-sense-no-sense "got $hex"
fi

# The device still does plain I/O after all of it.
head -c $((4 * 1024 * 1024)) /dev/urandom >"$W/final.bin"
if write_blocks "$W/final.bin" 50000 && read_blocks "$W/back.bin" 50000 8192 && cmp -s "$W/back.bin" "$W/final.bin"; then
	pass io-after-command-set
else
	fail io-after-command-set "4 MiB read back differs"
fi

unexport_tcm_loop "$NAME"
st=0
stop_appliance 60 || st=$?
if [ "$st" = 0 ]; then pass clean-exit; else fail clean-exit "exit status $st"; fi
diag "appliance log:"
sed 's/^/#   /' "$APPLIANCE_LOG" | tail -n 15
cleanup
finish
