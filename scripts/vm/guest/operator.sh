#!/usr/bin/env bash
# Real-kernel operator checks (issue 15): the README's quick-start config gives a /dev/sdX that
# mkfs, mount, write and read work on; devices made the way targetcli makes them for tcmu-runner
# (user:file, user:qcow: subtypes file and qcow) are ignored by a plain serve and served, from
# their tcmu-runner config strings, under --compat tcmu-runner — the qcow one read-only, said so
# in the log and in `list`.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 8

APP=$APPLIANCE_BIN
MiB=$((1024 * 1024))
IMAGES=$VM_SCRATCH/operator
mkdir -p "$IMAGES" "$VM_SCRATCH/mnt"
ip link set lo up 2>/dev/null

cleanup() {
	umount "$VM_SCRATCH/mnt" 2>/dev/null
	[ -n "${VM_OUT:-}" ] && cp "$APPLIANCE_LOG" "$VM_OUT/" 2>/dev/null
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
}
trap cleanup EXIT

log_mark() { LOG_MARK=$(wc -l <"$APPLIANCE_LOG"); }
new_log() { tail -n +$((LOG_MARK + 1)) "$APPLIANCE_LOG"; }
wait_for_new_log() { # PATTERN [TIMEOUT_S]
	local pattern=$1
	_wait_until "${2:-30}" eval 'new_log | grep -qE -- "$pattern"'
}

# --- the quick start: examples/quickstart.toml as the README runs it ------------------------------
log_mark
start_appliance --config "$VM_REPO_ROOT/examples/quickstart.toml" || { fail quickstart-serve "serve did not start"; finish; }
if wait_for_new_log "quick0 is /dev/sd[a-z]+ \(tcm_loop naa\." 90; then
	disk=$(new_log | grep -oE "quick0 is /dev/sd[a-z]+" | head -n 1 | awk '{print $3}')
	pass quickstart-names-its-disk
else
	fail quickstart-names-its-disk "no 'quick0 is /dev/sdX' line: $(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
	finish
fi
head -c $((8 * MiB)) /dev/urandom >"$VM_SCRATCH/quick.bin"
if timeout 120 mkfs.ext4 -q -F "$disk" && mount "$disk" "$VM_SCRATCH/mnt" && cp "$VM_SCRATCH/quick.bin" "$VM_SCRATCH/mnt/data.bin" &&
	sync && umount "$VM_SCRATCH/mnt" && echo 3 >/proc/sys/vm/drop_caches && mount "$disk" "$VM_SCRATCH/mnt" &&
	cmp -s "$VM_SCRATCH/quick.bin" "$VM_SCRATCH/mnt/data.bin"; then
	pass quickstart-disk-mkfs-mount-write-read
else
	fail quickstart-disk-mkfs-mount-write-read "ext4 on $disk did not give the data back"
fi
umount "$VM_SCRATCH/mnt" 2>/dev/null
if curl -sf "http://127.0.0.1:9540/healthz" | grep -q '"healthy":true'; then pass quickstart-metrics-listener; else fail quickstart-metrics-listener "no healthy /healthz on 127.0.0.1:9540"; fi
stop_appliance || diag "serve exited with status $?"
timeout 60 "$APP" remove quick0 >/dev/null 2>&1 || diag "remove quick0 failed"

# --- targetcli-style devices for tcmu-runner's handlers ------------------------------------------
truncate -s $((32 * MiB)) "$IMAGES/tf.img"
qemu-img create -q -f qcow2 "$IMAGES/tq.qcow2" 32M && qemu-io -f qcow2 -c "write -P 0xab 0 1M" "$IMAGES/tq.qcow2" >/dev/null
log_mark
start_appliance --allow-root "$IMAGES" --metrics-listen off --log-level debug || { fail compat-serve "serve did not start"; finish; }
# What targetcli's user:file and user:qcow storage objects write (rtslib UserBackedStorageObject).
USER_HBA=user_0
if create_user_backstore tf $((32 * MiB)) "file/$IMAGES/tf.img" && create_user_backstore tq $((32 * MiB)) "qcow/$IMAGES/tq.qcow2"; then
	sleep 3
	if new_log | grep -qE "attached uio[0-9]+ (tf|tq) "; then
		fail compat-off-ignores-tcmu-runner-subtypes "a plain serve attached them: $(new_log | grep -E 'attached uio[0-9]+ (tf|tq) ' | head -n 1)"
	else
		pass compat-off-ignores-tcmu-runner-subtypes
	fi
else
	fail compat-off-ignores-tcmu-runner-subtypes "could not create the targetcli-style devices"
fi
stop_appliance || diag "serve exited with status $?"
log_mark
start_appliance --allow-root "$IMAGES" --metrics-listen off --log-level debug --compat tcmu-runner || { fail compat-serve "serve --compat did not start"; finish; }
if wait_for_new_log "attached uio[0-9]+ tf config=/" 30 && wait_for_new_log "attached uio[0-9]+ tq config=/" 30; then
	pass compat-serves-user-file-and-user-qcow
else
	fail compat-serves-user-file-and-user-qcow "$(new_log | grep -E 'tf|tq' | tail -n 3 | tr '\n' ' ')"
fi
tf_disk=$(export_tcm_loop tf) && tq_disk=$(export_tcm_loop tq)
head -c $((4 * MiB)) /dev/urandom >"$VM_SCRATCH/tf.bin"
if [ -n "${tf_disk:-}" ] && dd if="$VM_SCRATCH/tf.bin" of="$tf_disk" bs=1M oflag=direct status=none &&
	dd if="$tf_disk" of="$VM_SCRATCH/tf-back.bin" bs=1M count=4 iflag=direct status=none && cmp -s "$VM_SCRATCH/tf.bin" "$VM_SCRATCH/tf-back.bin" &&
	cmp -s <(head -c $((4 * MiB)) "$IMAGES/tf.img") "$VM_SCRATCH/tf.bin"; then
	pass compat-user-file-data-reaches-the-image
else
	fail compat-user-file-data-reaches-the-image "data written through $tf_disk did not come back / reach tf.img"
fi
# The qcow device: the image's data reads back; a write is refused (read-only here), said at attach and in list.
if [ -n "${tq_disk:-}" ] && [ "$(dd if="$tq_disk" bs=1M count=1 iflag=direct status=none | od -An -tx1 -v | tr -s ' \n' '\n' | sort -u | grep -v '^$')" = ab ] &&
	! dd if=/dev/zero of="$tq_disk" bs=4k count=1 oflag=direct status=none 2>/dev/null; then
	pass compat-user-qcow-reads-image-refuses-writes
else
	fail compat-user-qcow-reads-image-refuses-writes "first MiB not 0xab, or a write was accepted"
fi
if new_log | grep -q "tq (qcow/$IMAGES/tq.qcow2): tcmu-runner's qcow handler writes" && "$APP" list | grep -q "^note: tq: tcmu-runner's qcow handler writes"; then
	pass compat-read-only-difference-said-in-log-and-list
else
	fail compat-read-only-difference-said-in-log-and-list "$("$APP" list | grep '^note' | head -n 2 | tr '\n' ' ')"
fi
unexport_tcm_loop tf
unexport_tcm_loop tq
remove_user_backstore tf
remove_user_backstore tq
finish
