#!/usr/bin/env bash
# Real-kernel tests of the backstores (issue 4), through tcm_loop:
#   - fio random write + crc32c verify on a RAM device and on a file device;
#   - ext4 on the file device: files, checksums, umount, fsck clean, remount, checksums equal;
#   - UNMAP really frees blocks of the image (fstrim, then blkdiscard: `du` shrinks, reads zeros);
#   - a block device (loop) as a file backstore, and one smaller than dev_size refused;
#   - an image outside --allow-root refused;
#   - RAM data survives the appliance killed with SIGKILL and started again;
#   - removing the RAM device deletes its /dev/shm file.
# TCG runs ~30x slower than native: sizes are small so each step stays under a minute.
# Run: scripts/vm/run-vm.sh scripts/vm/guest/backstores.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 19

SIZE=$((64 * 1024 * 1024))
IMAGES=$VM_SCRATCH/images
MNT=$VM_SCRATCH/mnt
FILE_IMAGE=$IMAGES/disk.img
LOOP_IMAGE=$IMAGES/loop-backing.img
mkdir -p "$IMAGES" "$MNT"
LOOP_DEV=
out=
before=
after=

cleanup() {
	mountpoint -q "$MNT" && umount "$MNT"
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
	[ -n "$LOOP_DEV" ] && losetup -d "$LOOP_DEV" 2>/dev/null
	return 0
}
trap cleanup EXIT

# --- helpers ---------------------------------------------------------------------------------
# The appliance log since the last start_appliance (each start appends a marker line).
log_since_start() { awk '/^--- start: /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$APPLIANCE_LOG"; }
_log_has() { log_since_start | grep -qE -- "$1"; }
# wait_for_current_log PATTERN [TIMEOUT_S]: like wait_for_log, ignoring earlier runs' lines.
wait_for_current_log() {
	_wait_until "${2:-30}" _log_has "$1" && return 0
	echo "no /$1/ in the appliance log since its last start" >&2
	return 1
}
image_kib() { du -k "$1" | cut -f1; }
# fio_verify NAME DEV: random writes of mixed sizes over 16 MiB, each block verified by crc32c
# while writing (verify_backlog) and again once all are written.
fio_verify() {
	local out
	out=$(fio --name="$1" --filename="$2" --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite \
		--bsrange=4k-64k --size=16M --verify=crc32c --verify_backlog=64 --do_verify=1 --verify_fatal=1 --randrepeat=0 2>&1)
	local st=$?
	if [ $st = 0 ] && ! grep -qi 'verify.*bad\|crc32c.*mismatch\|error=' <<<"$out"; then
		pass "$1"
	else
		fail "$1" "fio exit $st: $(tail -n 5 <<<"$out" | tr '\n' ' ')"
	fi
}
sha_of_device_range() { # DEV OFFSET_MIB COUNT_MIB: checksum read with O_DIRECT (no page cache)
	dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none | sha256sum | cut -d' ' -f1
}

# --- devices -----------------------------------------------------------------------------------
create_user_backstore bs_ram "$SIZE" appliance/ram/bsram || { fail create-ram "configfs refused"; finish; }
create_user_backstore bs_file "$SIZE" "appliance/file/$FILE_IMAGE" || { fail create-file "configfs refused"; finish; }
# Outside --allow-root: must be refused (never exported, so nothing waits on it).
create_user_backstore bs_outside "$SIZE" appliance/file//var/tmp/outside.img || { fail create-outside "configfs refused"; finish; }

# /dev is allowed too: the block-device cases below serve a loop device.
start_appliance --allow-root "$IMAGES,/dev" || { fail start "appliance did not start"; finish; }
if wait_for_current_log 'attached uio[0-9]+ bs_ram config=ram/bsram' 30; then pass attach-ram; else fail attach-ram "no attach line"; fi
if wait_for_current_log "attached uio[0-9]+ bs_file config=file/$FILE_IMAGE" 30; then pass attach-file; else fail attach-file "no attach line"; fi
if wait_for_current_log 'bs_outside.*lies outside the allowed roots' 30; then
	pass allow-root-refuses
else
	fail allow-root-refuses "no refusal for /var/tmp/outside.img"
fi
[ ! -e /var/tmp/outside.img ] && pass allow-root-creates-nothing || fail allow-root-creates-nothing "/var/tmp/outside.img exists"
remove_user_backstore bs_outside || diag "could not remove bs_outside"

if [ "$(stat -c %s "$FILE_IMAGE" 2>/dev/null)" = "$SIZE" ] && [ "$(image_kib "$FILE_IMAGE")" -lt 64 ]; then
	pass file-created-sparse
else
	fail file-created-sparse "size $(stat -c %s "$FILE_IMAGE" 2>/dev/null), $(image_kib "$FILE_IMAGE" 2>/dev/null) KiB used"
fi

ram_dev=$(export_tcm_loop bs_ram) || { fail export-ram "no tcm_loop disk"; finish; }
file_dev=$(export_tcm_loop bs_file) || { fail export-file "no tcm_loop disk"; finish; }
diag "ram $ram_dev, file $file_dev"

# --- fio verify ---------------------------------------------------------------------------------
fio_verify fio-verify-ram "$ram_dev"
fio_verify fio-verify-file "$file_dev"

# --- ext4 on the file device ------------------------------------------------------------------
fs_files() { # writes a few files of assorted sizes into $MNT/data
	mkdir -p "$MNT/data" || return 1
	local i
	for i in 1 2 3 4 5 6 7 8; do head -c $((i * 37 * 1024 + i)) /dev/urandom >"$MNT/data/small-$i" || return 1; done
	head -c $((12 * 1024 * 1024)) /dev/urandom >"$MNT/data/big" || return 1
	(cd "$MNT/data" && sha256sum small-* big) >"$VM_SCRATCH/fs.sha256"
}
if mkfs.ext4 -q -F "$file_dev" && mount "$file_dev" "$MNT" && fs_files && sync && umount "$MNT"; then
	pass ext4-write
	if out=$(fsck.ext4 -fn "$file_dev" 2>&1); then pass ext4-fsck-clean; else fail ext4-fsck-clean "$(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
	echo 3 >/proc/sys/vm/drop_caches
	if mount "$file_dev" "$MNT" && (cd "$MNT/data" && sha256sum -c --quiet "$VM_SCRATCH/fs.sha256"); then
		pass ext4-remount-checksums
	else
		fail ext4-remount-checksums "files differ after remount"
	fi
	# fstrim: deleting the big file and trimming must give its blocks back in the image.
	before=$(image_kib "$FILE_IMAGE")
	if rm -f "$MNT/data/big" && sync && out=$(fstrim -v "$MNT" 2>&1); then
		after=$(image_kib "$FILE_IMAGE")
		diag "fstrim: $out; image $before KiB -> $after KiB"
		if [ "$after" -le $((before - 10 * 1024)) ]; then pass fstrim-frees-image-blocks; else fail fstrim-frees-image-blocks "image $before KiB -> $after KiB"; fi
	else
		fail fstrim-frees-image-blocks "fstrim failed: $out"
	fi
	umount "$MNT"
else
	fail ext4-write "mkfs, mount or writing files failed"
fi

# --- UNMAP through blkdiscard -----------------------------------------------------------------
discard_max=$(cat "/sys/block/${file_dev#/dev/}/queue/discard_max_bytes" 2>/dev/null || echo 0)
diag "file device discard_max_bytes=$discard_max"
if head -c $((32 * 1024 * 1024)) /dev/urandom | dd of="$file_dev" bs=1M oflag=direct status=none; then
	before=$(image_kib "$FILE_IMAGE")
	if out=$(blkdiscard "$file_dev" 2>&1); then
		after=$(image_kib "$FILE_IMAGE")
		diag "blkdiscard: image $before KiB -> $after KiB"
		if [ "$before" -ge $((32 * 1024)) ] && [ "$after" -le 1024 ]; then pass unmap-frees-image-blocks; else fail unmap-frees-image-blocks "image $before KiB -> $after KiB"; fi
		zeros=$(head -c $((32 * 1024 * 1024)) /dev/zero | sha256sum | cut -d' ' -f1)
		if [ "$(sha_of_device_range "$file_dev" 0 32)" = "$zeros" ]; then pass unmap-reads-zeros; else fail unmap-reads-zeros "discarded range is not zeros"; fi
	else
		fail unmap-frees-image-blocks "blkdiscard failed (discard_max_bytes=$discard_max): $out"
	fi
else
	fail unmap-frees-image-blocks "could not fill the device"
fi

# --- a block device as a file backstore ------------------------------------------------------
truncate -s $((32 * 1024 * 1024)) "$LOOP_IMAGE"
if LOOP_DEV=$(losetup -f --show "$LOOP_IMAGE" 2>&1); then
	blk_dev=
	if create_user_backstore bs_blk $((32 * 1024 * 1024)) "appliance/file/$LOOP_DEV" &&
		wait_for_current_log "attached uio[0-9]+ bs_blk config=file/$LOOP_DEV" 30 && blk_dev=$(export_tcm_loop bs_blk); then
		head -c $((4 * 1024 * 1024)) /dev/urandom >"$VM_SCRATCH/blk.bin"
		if dd if="$VM_SCRATCH/blk.bin" of="$blk_dev" bs=1M seek=3 oflag=direct status=none &&
			cmp -s <(dd if="$LOOP_DEV" bs=1M skip=3 count=4 iflag=direct status=none) "$VM_SCRATCH/blk.bin" &&
			cmp -s <(dd if="$blk_dev" bs=1M skip=3 count=4 iflag=direct status=none) "$VM_SCRATCH/blk.bin"; then
			pass block-device-roundtrip
		else
			fail block-device-roundtrip "data on $LOOP_DEV differs"
		fi
		unexport_tcm_loop bs_blk
	else
		fail block-device-roundtrip "bs_blk over $LOOP_DEV not attached or exported"
	fi
	remove_user_backstore bs_blk
	# Once bs_blk has let go of the device: dev_size beyond the device's 32 MiB is refused.
	# With netlink replies on, serve's refusal also fails the `enable` write itself (EINVAL),
	# so the administrator sees it at once; the log names the reason either way.
	enable_ok=0
	create_user_backstore bs_blk_big $((64 * 1024 * 1024)) "appliance/file/$LOOP_DEV" && enable_ok=1
	if wait_for_current_log "bs_blk_big.*less than dev_size" 30; then
		diag "enable of the too-small device $([ $enable_ok = 1 ] && echo succeeded || echo failed)"
		pass block-device-too-small-refused
	else
		fail block-device-too-small-refused "no refusal logged"
	fi
	remove_user_backstore bs_blk_big
else
	fail block-device-roundtrip "losetup: $LOOP_DEV"
	LOOP_DEV=
fi

# --- RAM survives SIGKILL ---------------------------------------------------------------------
head -c $((8 * 1024 * 1024)) /dev/urandom >"$VM_SCRATCH/ram.bin"
want=$(sha256sum <"$VM_SCRATCH/ram.bin" | cut -d' ' -f1)
if dd if="$VM_SCRATCH/ram.bin" of="$ram_dev" bs=1M seek=40 oflag=direct status=none; then
	kill -KILL "$APPLIANCE_PID"
	wait "$APPLIANCE_PID" 2>/dev/null
	APPLIANCE_PID=
	shm=$(ls /dev/shm/tcmu-appliance-user_1_bs_ram-* 2>/dev/null | head -n 1)
	if [ -n "$shm" ]; then pass ram-shm-file-outlives-handler; else fail ram-shm-file-outlives-handler "no /dev/shm/tcmu-appliance-user_1_bs_ram-*"; fi
	if start_appliance --allow-root "$IMAGES" && wait_for_current_log 'attached uio[0-9]+ bs_ram config=ram/bsram' 30; then
		echo 3 >/proc/sys/vm/drop_caches
		got=$(sha_of_device_range "$ram_dev" 40 8)
		if [ "$got" = "$want" ]; then pass ram-survives-sigkill; else fail ram-survives-sigkill "checksum $got, wrote $want"; fi
	else
		fail ram-survives-sigkill "appliance did not come back"
	fi
else
	fail ram-survives-sigkill "could not write the RAM device"
fi

# --- removing the RAM device deletes its memory -------------------------------------------------
unexport_tcm_loop bs_ram
if [ -n "$APPLIANCE_PID" ] && remove_user_backstore bs_ram; then
	if _wait_until 15 eval '! ls /dev/shm/tcmu-appliance-user_1_bs_ram-* >/dev/null 2>&1'; then
		pass ram-removed-frees-shm
	else
		fail ram-removed-frees-shm "/dev/shm file still there after the device was removed"
	fi
else
	fail ram-removed-frees-shm "appliance not running or bs_ram not removed"
fi

st=0
stop_appliance 60 || st=$?
[ "$st" = 0 ] && pass sigterm-clean-exit || fail sigterm-clean-exit "exit status $st"
diag "appliance log:"
sed 's/^/#   /' "$APPLIANCE_LOG" | tail -n 30
finish
