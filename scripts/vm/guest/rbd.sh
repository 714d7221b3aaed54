#!/usr/bin/env bash
# Real-kernel test of the rbd backstore: a throwaway Ceph cluster inside the VM
# (scripts/ceph/test-cluster.sh: one monitor, one memstore OSD, on 127.0.0.1), an image served
# through `create … rbd/rbd/<image>` and tcm_loop, fio randwrite with verify through the disk,
# the data compared with what `rbd export` reads from the cluster, and `rbd resize` seen by the
# initiator as a larger disk.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 5

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
timeout 60 "$APP" remove vm1 >/dev/null 2>&1 || diag "remove vm1 failed"
finish
