#!/usr/bin/env bash
# Real-kernel tests of the foundation: a 64 MiB RAM device (dev_config=appliance/ram) served
# by the compiled binary and exported through tcm_loop.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 7

SIZE=$((64 * 1024 * 1024))
# A 1 MiB command ring (instead of 8 MiB) so a few thousand commands wrap it.
create_user_backstore ram0 "$SIZE" appliance/ram cmd_ring_size_mb=1 || { fail create-backstore "configfs refused"; finish; }
ring_mb=$(cat "$TARGET_CFG/core/$USER_HBA/ram0/attrib/cmd_ring_size_mb" 2>/dev/null)
diag "cmd_ring_size_mb=$ring_mb"

start_appliance || { fail start "appliance did not start"; finish; }
if wait_for_log 'attached uio[0-9]+ ram0 config=ram size=64 MiB block=512' 30; then pass attach-log; else fail attach-log "no attach line"; fi

dev=$(export_tcm_loop ram0) || { fail export "no tcm_loop disk"; finish; }
diag "disk $dev"

inq=$(sg_inq "$dev" 2>&1)
if printf '%s\n' "$inq" | grep -q 'Vendor identification: LIO-ORG' && printf '%s\n' "$inq" | grep -q 'Product identification: tcmu-appliance'; then
	pass sg_inq
else
	fail sg_inq "$(printf '%s' "$inq" | tr '\n' ' ' | head -c 300)"
fi

cap=$(sg_readcap "$dev" 2>&1)
if printf '%s\n' "$cap" | grep -q "Device size: $SIZE bytes" && printf '%s\n' "$cap" | grep -q 'Logical block length=512 bytes'; then
	pass sg_readcap-64MiB
else
	fail sg_readcap-64MiB "$(printf '%s' "$cap" | tr '\n' ' ' | head -c 300)"
fi

head -c $((16 * 1024 * 1024)) /dev/urandom >"$VM_SCRATCH/random.bin"
if dd if="$VM_SCRATCH/random.bin" of="$dev" bs=1M oflag=direct status=none &&
	dd if="$dev" of="$VM_SCRATCH/back.bin" bs=1M count=16 iflag=direct status=none &&
	cmp -s "$VM_SCRATCH/random.bin" "$VM_SCRATCH/back.bin"; then
	pass dd-16MiB-direct-roundtrip
else
	fail dd-16MiB-direct-roundtrip "data read back differs"
fi

# ~120 bytes of ring per 512-byte command: 20000 commands go round a 1 MiB ring twice.
if dd if="$VM_SCRATCH/random.bin" of="$dev" bs=512 count=10000 seek=40960 oflag=direct status=none &&
	dd if="$dev" of="$VM_SCRATCH/small.bin" bs=512 count=10000 skip=40960 iflag=direct status=none &&
	head -c $((10000 * 512)) "$VM_SCRATCH/random.bin" >"$VM_SCRATCH/small-expected.bin" &&
	cmp -s "$VM_SCRATCH/small.bin" "$VM_SCRATCH/small-expected.bin" &&
	sg_inq "$dev" >/dev/null 2>&1; then
	pass ring-wrap-io
else
	fail ring-wrap-io "small direct I/O across ring wraps failed"
fi

st=0
stop_appliance 60 || st=$?
if [ "$st" = 0 ] && grep -q 'stopped' "$APPLIANCE_LOG"; then pass sigterm-clean-exit; else fail sigterm-clean-exit "exit status $st"; fi
pads=$(grep -oE 'ram0: [0-9]+ commands, [0-9]+ PAD' "$APPLIANCE_LOG" | tail -n 1 | awk '{print $4}')
if [ -n "$pads" ] && [ "$pads" -ge 1 ]; then pass ring-wrapped; else fail ring-wrapped "no PAD entry seen (pads=${pads:-none})"; fi

diag "appliance log:"
sed 's/^/#   /' "$APPLIANCE_LOG" | tail -n 20
unexport_tcm_loop ram0
remove_user_backstore ram0
finish
