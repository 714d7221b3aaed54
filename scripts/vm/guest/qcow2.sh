#!/usr/bin/env bash
# Real-kernel tests of the qcow2 backstore (issue 5), through tcm_loop: images made with
# qemu-img/qemu-io in a tmpfs scratch dir are served read-only, and `dd` of the whole disk must
# equal `qemu-img convert -U -O raw` of the image:
#   - deflate and zstd compressed images, a v2 image with 4 KiB clusters;
#   - extended L2 subclusters over a backing file, an external data file;
#   - a three-deep chain (raw base of an odd size, a larger middle, a smaller top);
#   - an internal snapshot by name, and a dev_size smaller than the image;
#   - writes are refused (WP set, DATA PROTECT), a damaged image answers MEDIUM ERROR.
# TCG runs ~30x slower than native: images are 8-24 MiB.
# Run: scripts/vm/run-vm.sh scripts/vm/guest/qcow2.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 37

W=$VM_SCRATCH/qcow2
mkdir -p "$W"
MiB=$((1024 * 1024))

cleanup() {
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
	return 0
}
trap cleanup EXIT

# --- helpers ---------------------------------------------------------------------------------
log_since_start() { awk '/^--- start: /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$APPLIANCE_LOG"; }
_log_has() { log_since_start | grep -qE -- "$1"; }
wait_for_current_log() { # PATTERN [TIMEOUT_S]
	_wait_until "${2:-30}" _log_has "$1" && return 0
	echo "no /$1/ in the appliance log since its last start" >&2
	return 1
}
virtual_size() { qemu-img info -U --output=json "$1" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }
# reference IMAGE OUT [SNAPSHOT]: what QEMU reads.
reference() {
	if [ -n "${3:-}" ]; then
		qemu-img convert -U -l "snapshot.name=$3" -O raw "$1" "$2"
	else
		qemu-img convert -U -O raw "$1" "$2"
	fi
}
# source_data FILE MIB: 256 KiB pieces of random bytes, text and zeros in turn.
source_data() {
	local i
	: >"$1"
	for ((i = 0; i < $2 * 4; i++)); do
		case $((i % 3)) in
		0) head -c 256K /dev/urandom ;;
		1) yes "qcow2 guest test, piece $i of $1" | head -c 256K ;;
		2) head -c 256K /dev/zero ;;
		esac >>"$1"
	done
}

# serve_and_compare NAME DEV_CONFIG_PATH DEV_SIZE REFERENCE: serve, check size, read-only, bytes.
serve_and_compare() {
	local name=$1 cfg=$2 size=$3 ref=$4 dev sysname
	if ! create_user_backstore "$name" "$size" "appliance/$cfg"; then
		fail "$name-create" "configfs refused"
		return
	fi
	if ! wait_for_current_log "attached uio[0-9]+ $name " 30; then
		fail "$name-attach" "$(log_since_start | tail -n 3 | tr '\n' ' ')"
		remove_user_backstore "$name"
		return
	fi
	if ! dev=$(export_tcm_loop "$name"); then
		fail "$name-export" "no disk"
		remove_user_backstore "$name"
		return
	fi
	sysname=${dev#/dev/}
	if [ "$(blockdev --getsize64 "$dev")" = "$size" ]; then pass "$name-size"; else fail "$name-size" "$(blockdev --getsize64 "$dev") != $size"; fi
	if dd if="$dev" bs=1M iflag=direct status=none | cmp -s - <(head -c "$size" "$ref"); then
		pass "$name-bytes-equal-qemu"
	else
		fail "$name-bytes-equal-qemu" "$(dd if="$dev" bs=1M iflag=direct status=none | cmp - <(head -c "$size" "$ref") 2>&1 | head -n 1)"
	fi
	if [ "$(cat "/sys/block/$sysname/ro")" = 1 ]; then pass "$name-write-protected"; else fail "$name-write-protected" "/sys/block/$sysname/ro is not 1 (MODE SENSE WP)"; fi
	# Past the block layer's read-only flag: SG_IO WRITE(10) must answer DATA PROTECT.
	if command -v sg_raw >/dev/null; then
		local out
		# -R: the disk is read-only to the block layer; root may still send WRITE through SG_IO.
		out=$(head -c 512 /dev/zero | sg_raw -R -s 512 -i /dev/stdin "$dev" 2a 00 00 00 00 00 00 00 01 00 2>&1)
		if grep -qi 'data protect' <<<"$out"; then pass "$name-write-refused"; else fail "$name-write-refused" "$(tr '\n' ' ' <<<"$out")"; fi
	elif dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct conv=notrunc status=none 2>/dev/null; then
		fail "$name-write-refused" "a write succeeded"
	else
		pass "$name-write-refused"
	fi
	unexport_tcm_loop "$name" || diag "could not unexport $name"
	remove_user_backstore "$name" || diag "could not remove $name"
}

for tool in qemu-img qemu-io; do
	command -v "$tool" >/dev/null || {
		fail "tool-$tool" "$tool missing in the guest"
		finish
	}
done

# --- images ----------------------------------------------------------------------------------
make_images() (
	set -e
	cd "$W"
	source_data src.raw 24
	qemu-img convert -f raw -O qcow2 -c -o compression_type=zlib src.raw deflate.qcow2
	qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd src.raw zstd.qcow2
	qemu-img convert -f raw -O qcow2 -c -o compat=0.10,cluster_size=4096 src.raw v2.qcow2
	# Extended L2: 64 KiB clusters of 2 KiB subclusters, some allocated, some zero, the rest backing.
	qemu-img convert -f raw -O qcow2 src.raw xl2-base.qcow2
	qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k -b xl2-base.qcow2 -F qcow2 xl2.qcow2 24M
	qemu-io -f qcow2 -c 'write -P 0x41 4k 4k' -c 'write -z 70k 2k' -c 'write -z -u 134k 4k' -c 'write -P 0x42 1M 100k' -c 'write -P 0x43 5M 2k' xl2.qcow2 >/dev/null
	# External data file (absolute name: QEMU resolves a relative one against its working directory).
	qemu-img create -q -f qcow2 -o "data_file=$W/ext.data" ext.qcow2 16M
	qemu-io -f qcow2 -c 'write -P 0x51 0 1M' -c 'write -P 0x52 7M 300k' -c 'write -z 7200k 8k' -c 'write -P 0x53 15M 4k' ext.qcow2 >/dev/null
	# Three deep: raw base of 20 MiB + 1000 bytes, a 28 MiB middle, a 24 MiB top with 4 KiB clusters.
	head -c $((20 * MiB + 1000)) src.raw >chain-base.raw
	qemu-img create -q -f qcow2 -b chain-base.raw -F raw chain-mid.qcow2 28M
	qemu-io -f qcow2 -c 'write -P 0x61 1M 64k' -c 'write -P 0x62 19M 4M' -c 'write -z 2M 4k' chain-mid.qcow2 >/dev/null
	qemu-img create -q -f qcow2 -o cluster_size=4096 -b chain-mid.qcow2 -F qcow2 chain-top.qcow2 24M
	qemu-io -f qcow2 -c 'write -P 0x71 1040k 8k' -c 'write -z -u 3M 64k' -c 'write -P 0x72 23M 4k' chain-top.qcow2 >/dev/null
	# An internal snapshot, then changes after it.
	qemu-img convert -f raw -O qcow2 -c src.raw snap.qcow2
	qemu-img snapshot -c golden snap.qcow2
	qemu-io -f qcow2 -c 'write -P 0x81 0 2M' -c 'write -z 8M 1M' snap.qcow2 >/dev/null
	# Damaged: the file loses its last 192 KiB (the last data clusters).
	cp deflate.qcow2 cut.qcow2
	truncate -s -192K cut.qcow2
)
check images-made make_images || finish
cd "$W" || finish

start_appliance || {
	fail start "appliance did not start"
	finish
}

# --- served images equal what QEMU reads -----------------------------------------------------
n=0
for image in deflate zstd v2 xl2 ext chain-top; do
	n=$((n + 1))
	reference "$image.qcow2" "$image.ref"
	serve_and_compare "qc_$n" "qcow2/$W/$image.qcow2" "$(virtual_size "$image.qcow2")" "$image.ref"
	rm -f "$image.ref"
done

reference snap.qcow2 snap-golden.ref golden
serve_and_compare qc_snap "qcow2/$W/snap.qcow2;snapshot=golden" "$(virtual_size snap.qcow2)" snap-golden.ref

# A dev_size 4 MiB under the image's size: served (with a warning), the first bytes equal.
reference zstd.qcow2 zstd.ref
serve_and_compare qc_small "qcow2/$W/zstd.qcow2" $(($(virtual_size zstd.qcow2) - 4 * MiB)) zstd.ref
if log_since_start | grep -q 'is smaller than the image'; then pass small-dev-size-warned; else fail small-dev-size-warned "no warning in the log"; fi

# --- a damaged image answers MEDIUM ERROR where it is damaged, data elsewhere -------------------
size=$(virtual_size cut.qcow2)
if create_user_backstore qc_cut "$size" "appliance/qcow2/$W/cut.qcow2" &&
	wait_for_current_log "attached uio[0-9]+ qc_cut " 30 && dev=$(export_tcm_loop qc_cut); then
	dmesg -c >/dev/null 2>&1
	if dd if="$dev" bs=64k count=16 iflag=direct status=none | cmp -s - <(head -c "$MiB" src.raw); then
		pass cut-start-reads
	else
		fail cut-start-reads "the first MiB differs or fails"
	fi
	if dd if="$dev" of=/dev/null bs=64k iflag=direct status=none 2>/dev/null; then
		fail cut-end-medium-error "the whole disk read without error"
	elif dmesg | grep -qi 'medium error'; then
		pass cut-end-medium-error
	else
		fail cut-end-medium-error "read failed without a medium error in dmesg: $(dmesg | tail -n 3 | tr '\n' ' ')"
	fi
	unexport_tcm_loop qc_cut
	remove_user_backstore qc_cut
else
	fail cut-served "could not serve the damaged image"
fi

if stop_appliance; then pass stop; else fail stop "appliance exited non-zero"; fi
finish
