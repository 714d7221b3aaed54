#!/usr/bin/env bash
# Real-kernel test of the rbd backstore: a throwaway Ceph cluster inside the VM
# (scripts/ceph/test-cluster.sh: one monitor, one memstore OSD, on 127.0.0.1), an image served
# through `create … rbd/rbd/<image>` and tcm_loop, fio randwrite with verify through the disk,
# the data compared with what `rbd export` reads from the cluster, `rbd resize` seen by the
# initiator as a larger disk, an OSD stall retried, COMPARE AND WRITE done on the cluster, GET LBA
# STATUS agreeing with `rbd diff --whole-object`, an ext4 mkfs/fsck round trip, and serve
# restarted while the cluster is down serving the device once the cluster is back.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 12

APP=$APPLIANCE_BIN
MiB=$((1024 * 1024))
CLUSTER=$VM_SCRATCH/ceph
ip link set lo up 2>/dev/null

cleanup() {
	[ -n "${VM_OUT:-}" ] && cp "$APPLIANCE_LOG" "$VM_OUT/" 2>/dev/null
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
	bash "$VM_REPO_ROOT/scripts/ceph/test-cluster.sh" stop "$CLUSTER" >/dev/null 2>&1
}
trap cleanup EXIT

t0=$SECONDS
if conf=$(timeout 300 bash "$VM_REPO_ROOT/scripts/ceph/test-cluster.sh" start "$CLUSTER" --lifetime 1200 2>"$VM_SCRATCH/ceph-start.txt"); then
	diag "ceph cluster up in $((SECONDS - t0)) s: $conf"
else
	fail ceph-cluster "test-cluster.sh start failed: $(tail -n 3 "$VM_SCRATCH/ceph-start.txt" | tr '\n' ' ')"
	finish
fi
rbdc() { timeout 120 rbd -c "$conf" "$@"; }
rbdc create rbd/vm1 --size 64M || { fail ceph-cluster "rbd create failed"; finish; }

start_appliance --metrics-listen off --log-level debug || { fail start "serve did not start"; finish; }
wwn=$(timeout 120 "$APP" create vm1 "rbd/rbd/vm1;conf=$conf" --size 64M --export loop --json | grep -o '"wwn": "naa\.[0-9a-f]*"' | cut -d'"' -f4)
if [ -n "$wwn" ] && disk=$(wait_for_tcm_loop_disk "$wwn" 0 60) && grep -qE "attached uio[0-9]+ vm1 .*backstore=rbd rbd/vm1" "$APPLIANCE_LOG"; then
	pass rbd-device-served
else
	fail rbd-device-served "$(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
	finish
fi

out=$VM_SCRATCH/fio-rbd.txt
if timeout 600 fio --output="$out" --name=rbd --filename="$disk" --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
	--bsrange=4k-64k --size=32M --verify=crc32c --verify_backlog=64 --do_verify=1 --verify_fatal=1 >/dev/null 2>&1 &&
	! grep -qiE "error=|verify.*(fail|bad)|crc32c.*mismatch" "$out"; then
	pass rbd-fio-randwrite-verify
	diag "fio: $(grep -E 'WRITE:|READ:' "$out" | tr -s ' ' | tr '\n' ' ')"
else
	fail rbd-fio-randwrite-verify "$(grep -iE 'error|verify|bad' "$out" | head -n 3 | tr '\n' ' ')"
fi

# What the initiator wrote is what the cluster holds.
head -c $((4 * MiB)) /dev/urandom >"$VM_SCRATCH/rbd-data.bin"
dd if="$VM_SCRATCH/rbd-data.bin" of="$disk" bs=1M seek=40 oflag=direct status=none && sync
if rbdc export rbd/vm1 "$VM_SCRATCH/vm1.raw" >/dev/null 2>&1 &&
	cmp -s "$VM_SCRATCH/rbd-data.bin" <(dd if="$VM_SCRATCH/vm1.raw" bs=1M skip=40 count=4 status=none); then
	pass rbd-data-reaches-the-cluster
else
	fail rbd-data-reaches-the-cluster "rbd export differs at 40 MiB"
fi

# rbd resize on the cluster: the disk grows after the unit attention (a rescan reads it).
rbdc resize rbd/vm1 --size 128M >/dev/null 2>&1
sysdev=/sys/block/${disk#/dev/}
grown=0
for _ in $(seq 30); do
	sleep 1
	echo 1 >"$sysdev/device/rescan" 2>/dev/null
	[ "$(cat "$sysdev/size")" = $((128 * MiB / 512)) ] && { grown=1; break; }
done
if [ $grown = 1 ]; then pass rbd-resize-seen-by-initiator; else fail rbd-resize-seen-by-initiator "size still $(cat "$sysdev/size") sectors"; fi

# An OSD that stops answering: commands get NOT READY after osd_op_timeout and are retried, not lost.
osd=$(cat "$CLUSTER/run/osd.0.pid" 2>/dev/null)
if [ -n "$osd" ]; then
	kill -STOP "$osd"
	dd if="$VM_SCRATCH/rbd-data.bin" of="$disk" bs=1M seek=8 count=1 oflag=direct status=none &
	writer=$!
	sleep 8
	kill -CONT "$osd"
	if _wait_until 120 eval '! _alive '"$writer" && wait "$writer" &&
		cmp -s <(head -c "$MiB" "$VM_SCRATCH/rbd-data.bin") <(dd if="$disk" bs=1M skip=8 count=1 iflag=direct status=none); then
		pass rbd-osd-stall-write-retried-not-lost
	else
		fail rbd-osd-stall-write-retried-not-lost "the write failed or its data did not read back"
	fi
else
	fail rbd-osd-stall-write-retried-not-lost "no osd pid"
fi

# COMPARE AND WRITE through the kernel, done by the OSD: a match is written to the cluster, a
# miscompare names its byte and leaves the block. LBA 8209 lies in the image's second object.
W=$VM_SCRATCH/caw
mkdir -p "$W"
head -c 512 /dev/urandom >"$W/old.bin"
head -c 512 /dev/urandom >"$W/new.bin"
dd if="$W/old.bin" of="$disk" bs=512 seek=8209 oflag=direct status=none
cat "$W/old.bin" "$W/new.bin" >"$W/caw.bin"
rc=0
out=$(sg_compare_and_write --in="$W/caw.bin" --lba=8209 --num=1 "$disk" 2>&1) || rc=$?
if [ "$rc" = 0 ] && rbdc export rbd/vm1 "$VM_SCRATCH/vm1-caw.raw" >/dev/null 2>&1 &&
	cmp -s "$W/new.bin" <(dd if="$VM_SCRATCH/vm1-caw.raw" bs=512 skip=8209 count=1 status=none); then
	pass rbd-compare-and-write-on-the-cluster
else
	fail rbd-compare-and-write-on-the-cluster "rc=$rc $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
fi
cp "$W/new.bin" "$W/stale.bin"
byte=$(od -An -tu1 -j300 -N1 "$W/new.bin" | tr -d ' ')
hex_to_file "$(printf '%02x' $((byte ^ 0xff)))" "$W/flip.bin"
dd if="$W/flip.bin" of="$W/stale.bin" bs=1 seek=300 conv=notrunc status=none
cat "$W/stale.bin" "$W/old.bin" >"$W/caw-stale.bin"
rc=0
out=$(sg_compare_and_write --in="$W/caw-stale.bin" --lba=8209 --num=1 "$disk" 2>&1) || rc=$?
if [ "$rc" = 14 ] && printf '%s' "$out" | grep -q 'Miscompare at byte offset: 300' &&
	cmp -s "$W/new.bin" <(dd if="$disk" bs=512 skip=8209 count=1 iflag=direct status=none); then
	pass rbd-compare-and-write-miscompare-offset
else
	fail rbd-compare-and-write-miscompare-offset "rc=$rc $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
fi

# GET LBA STATUS over the whole disk, as byte runs of mapped blocks, equals the image's existing
# objects by `rbd diff --whole-object` (both merged into runs the same way).
merge_runs() { sort -n | awk 'BEGIN { s = -1 } { if (s >= 0 && $1 == s + l) { l += $2 } else { if (s >= 0) print s, l; s = $1; l = $2 } } END { if (s >= 0) print s, l }'; }
total=$(cat "$sysdev/size") # 512-byte sectors, the disk's block size
lba=0
: >"$W/gls.txt"
while [ "$lba" -lt "$total" ]; do
	lines=$(sg_get_lba_status --brief --maxlen=1024 --lba="$lba" "$disk" 2>/dev/null | grep -E '^0x')
	[ -n "$lines" ] || { lba=-1; break; }
	while read -r start blocks status _; do
		[ "$status" = 0 ] && echo "$((start * 512)) $((blocks * 512))" >>"$W/gls.txt"
		lba=$((start + blocks))
	done <<<"$lines"
done
gls=$(merge_runs <"$W/gls.txt")
diffed=$(rbdc diff --whole-object rbd/vm1 | awk 'NR > 1 && $3 == "data" { print $1, $2 }' | merge_runs)
if [ "$lba" -ge "$total" ] && [ -n "$gls" ] && [ "$gls" = "$diffed" ]; then
	pass rbd-get-lba-status-matches-rbd-diff
	diag "mapped runs: $(echo "$gls" | tr '\n' ';')"
else
	fail rbd-get-lba-status-matches-rbd-diff "GET LBA STATUS '$(echo "$gls" | tr '\n' ';')' vs rbd diff '$(echo "$diffed" | tr '\n' ';')' (stopped at LBA $lba of $total)"
fi

# ext4 on the rbd disk: mkfs, files, fsck clean, and the files read back after a remount.
MNT=$VM_SCRATCH/mnt
mkdir -p "$MNT"
rbd_files() {
	mkdir -p "$MNT/data" || return 1
	local i
	for i in 1 2 3 4 5 6; do head -c $((i * 41 * 1024 + i)) /dev/urandom >"$MNT/data/small-$i" || return 1; done
	head -c $((16 * MiB)) /dev/urandom >"$MNT/data/big" || return 1
	(cd "$MNT/data" && sha256sum small-* big) >"$VM_SCRATCH/rbd-fs.sha256"
}
if mkfs.ext4 -q -F "$disk" && mount "$disk" "$MNT" && rbd_files && sync && umount "$MNT"; then
	pass rbd-ext4-write
	if out=$(fsck.ext4 -fn "$disk" 2>&1); then pass rbd-ext4-fsck-clean; else fail rbd-ext4-fsck-clean "$(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
	echo 3 >/proc/sys/vm/drop_caches
	if mount "$disk" "$MNT" && (cd "$MNT/data" && sha256sum -c --quiet "$VM_SCRATCH/rbd-fs.sha256"); then
		pass rbd-ext4-remount-checksums
	else
		fail rbd-ext4-remount-checksums "files differ after remount"
	fi
	umount "$MNT" 2>/dev/null
else
	fail rbd-ext4-write "mkfs, mount or writing files failed"
	fail rbd-ext4-fsck-clean "no file system"
	fail rbd-ext4-remount-checksums "no file system"
fi

# serve restarted while the whole cluster is stopped: the device's open is refused as transient
# (after client_mount_timeout, on a connect thread), tried again every 10 s, and the device is
# served with its data once the cluster answers again.
log_since() { tail -n +"$1" "$APPLIANCE_LOG" | grep -qE -- "$2"; }
before=$(dd if="$disk" bs=1M count=8 iflag=direct status=none | sha256sum)
mon=$(cat "$CLUSTER/run/mon.a.pid" 2>/dev/null)
stop_appliance || diag "serve did not stop cleanly"
from=$(($(wc -l <"$APPLIANCE_LOG") + 1))
kill -STOP "$mon" "$osd"
start_appliance --metrics-listen off --log-level debug || diag "serve did not start"
if _wait_until 90 log_since "$from" "vm1 .*not served: .*cannot connect.*trying again every 10 s"; then
	kill -CONT "$mon" "$osd"
	if _wait_until 120 log_since "$from" "attached uio[0-9]+ vm1 .*backstore=rbd" &&
		[ "$(dd if="$disk" bs=1M count=8 iflag=direct status=none | sha256sum)" = "$before" ]; then
		pass rbd-served-once-the-cluster-is-back
	else
		fail rbd-served-once-the-cluster-is-back "not attached again, or the data differs: $(tail -n +"$from" "$APPLIANCE_LOG" | grep vm1 | tail -n 2 | tr '\n' ' ')"
	fi
else
	kill -CONT "$mon" "$osd"
	fail rbd-served-once-the-cluster-is-back "no transient refusal logged: $(tail -n +"$from" "$APPLIANCE_LOG" | tail -n 3 | tr '\n' ' ')"
fi
timeout 60 "$APP" remove vm1 >/dev/null 2>&1 || diag "remove vm1 failed"
finish
