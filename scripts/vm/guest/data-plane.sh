#!/usr/bin/env bash
# Real-kernel tests of the data plane (issue 11): four RAM devices on two data-plane workers,
# exported through tcm_loop, written and verified by four concurrent fio jobs (crc32c, read back
# as it goes with verify_backlog and once more at the end), and the devices really spread over
# both workers, EXTENDED COPY between devices on different workers, and a worker crash (serve
# --fault-injection) under a running fio job. Each device's data is compared, not just fio's
# exit code.
# Run: scripts/vm/run-vm.sh scripts/vm/guest/data-plane.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 19

SIZE=$((32 * 1024 * 1024))
DEVICES="dp0 dp1 dp2 dp3"

cleanup() {
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
	return 0
}
trap cleanup EXIT

ip link set lo up 2>/dev/null # the fault-injection endpoint on 127.0.0.1
start_appliance --data-plane-threads 2 --fault-injection || { fail start "appliance did not start"; finish; }
for name in $DEVICES; do
	create_user_backstore "$name" "$SIZE" "appliance/ram/$name" || { fail "create-$name" "configfs refused"; finish; }
done
for name in $DEVICES; do
	if wait_for_log "attached uio[0-9]+ $name config=ram/$name .* worker=[01]" 30; then pass "attach-$name"; else fail "attach-$name" "no attach line"; fi
done
workers=$(grep -oE "attached uio[0-9]+ dp[0-3] .* worker=[0-9]+" "$APPLIANCE_LOG" | grep -oE 'worker=[0-9]+' | sort -u | wc -l)
[ "$workers" = 2 ] && pass devices-on-two-workers || fail devices-on-two-workers "$workers distinct worker(s) in the attach lines"

declare -A disk
for name in $DEVICES; do
	disk[$name]=$(export_tcm_loop "$name") || { fail "export-$name" "no tcm_loop disk"; finish; }
done

# Four writers at once, each verifying what it wrote while it writes and again at the end.
declare -A pid
for name in $DEVICES; do
	fio --name="$name" --filename="${disk[$name]}" --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite \
		--bsrange=4k-64k --size=12M --verify=crc32c --verify_backlog=64 --do_verify=1 --verify_fatal=1 \
		--randrepeat=0 >"$VM_SCRATCH/fio-$name.log" 2>&1 &
	pid[$name]=$!
done
for name in $DEVICES; do
	wait "${pid[$name]}"
	st=$?
	if [ $st = 0 ] && ! grep -qi 'verify.*bad\|crc32c.*mismatch\|error=' "$VM_SCRATCH/fio-$name.log"; then
		pass "fio-verify-concurrent-$name"
	else
		fail "fio-verify-concurrent-$name" "fio exit $st: $(tail -n 5 "$VM_SCRATCH/fio-$name.log" | tr '\n' ' ')"
	fi
done

# The devices are separate: a pattern written to each reads back from it alone.
for name in $DEVICES; do
	printf '%-512s' "data-plane $name" | dd of="${disk[$name]}" bs=512 seek=60000 oflag=direct conv=notrunc status=none
done
for name in $DEVICES; do
	got=$(dd if="${disk[$name]}" bs=512 skip=60000 count=1 iflag=direct status=none | tr -d ' ')
	[ "$got" = "data-plane$name" ] && pass "isolated-data-$name" || fail "isolated-data-$name" "read back '$got'"
done
# EXTENDED COPY between two devices on different workers, issued on the source (its peer is the
# destination) and on the destination (its peer is the source); the copies are compared.
worker_of() { grep -oE "attached uio[0-9]+ $1 .* worker=[0-9]+" "$APPLIANCE_LOG" | grep -oE '[0-9]+$' | tail -n 1; }
naa_of() { sg_vpd --page=0x83 --raw "$1" 2>/dev/null | od -An -v -tx1 | tr -d ' \n' | cut -c17-48; }
src=dp0 dst=
for name in dp1 dp2 dp3; do
	[ "$(worker_of "$name")" != "$(worker_of dp0)" ] && dst=$name && break
done
# xcopy ON_DEVICE SRC_LBA DST_LBA: 64 blocks from $src to $dst, the CDB sent to ON_DEVICE.
xcopy() {
	local list
	list=00180040000000000000001c00000000
	list=${list}e400000001030010$(naa_of "${disk[$src]}")0000000000000200
	list=${list}e400000001030010$(naa_of "${disk[$dst]}")0000000000000200
	list=${list}0200001800000001000000$(printf '40%016x%016x' "$2" "$3")
	hex_to_file "$list" "$VM_SCRATCH/xcopy.bin"
	sg_raw -s $((${#list} / 2)) -i "$VM_SCRATCH/xcopy.bin" "$1" 83 00 00 00 00 00 00 00 00 00 00 00 00 $(printf '%02x' $((${#list} / 2))) 00 00 2>&1
}
if [ -z "$dst" ]; then
	fail xcopy-across-workers "no device on a worker other than dp0's"
	fail xcopy-across-workers-from-peer "no device on a worker other than dp0's"
else
	diag "EXTENDED COPY from $src (worker $(worker_of $src)) to $dst (worker $(worker_of $dst))"
	head -c $((64 * 512)) /dev/urandom >"$VM_SCRATCH/xcopy-pattern.bin"
	dd if="$VM_SCRATCH/xcopy-pattern.bin" of="${disk[$src]}" bs=512 seek=50000 oflag=direct conv=notrunc status=none
	out=$(xcopy "${disk[$src]}" 50000 51000)
	dd if="${disk[$dst]}" of="$VM_SCRATCH/xcopy-back.bin" bs=512 skip=51000 count=64 iflag=direct status=none
	cmp -s "$VM_SCRATCH/xcopy-back.bin" "$VM_SCRATCH/xcopy-pattern.bin" && pass xcopy-across-workers || fail xcopy-across-workers "sg_raw: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
	out=$(xcopy "${disk[$dst]}" 50000 52000)
	dd if="${disk[$dst]}" of="$VM_SCRATCH/xcopy-back.bin" bs=512 skip=52000 count=64 iflag=direct status=none
	cmp -s "$VM_SCRATCH/xcopy-back.bin" "$VM_SCRATCH/xcopy-pattern.bin" && pass xcopy-across-workers-from-peer || fail xcopy-across-workers-from-peer "sg_raw: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
fi
# A worker that crashes ends with its devices; serve attaches each again (ring reset, BUSY for
# what was in flight, which the initiator retries) on a new worker, and a fio job running on one
# of them through the crash completes with every block verified.
victim=dp0 sibling=
for name in dp1 dp2 dp3; do
	[ "$(worker_of "$name")" = "$(worker_of dp0)" ] && sibling=$name && break
done
attaches_of() { grep -cE "attached uio[0-9]+ $1 " "$APPLIANCE_LOG"; }
fio --name=crash --filename="${disk[$victim]}" --direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k \
	--size=8M --loops=6 --verify=crc32c --verify_backlog=64 --do_verify=1 --verify_fatal=1 --randrepeat=0 \
	>"$VM_SCRATCH/fio-crash.log" 2>&1 &
fio_pid=$!
sleep 2
answer=$(curl -s --max-time 10 -X POST "http://127.0.0.1:9540/fault-injection/$victim?kind=worker" 2>&1)
diag "fault injection: $answer (victim $victim, sibling ${sibling:-none} on worker $(worker_of $victim))"
if wait_for_log "$victim: released by its data-plane worker .*crash injected" 30; then
	pass worker-crash-releases
else
	fail worker-crash-releases "no release line; answer '$answer'"
	tail -n 30 "$APPLIANCE_LOG" | sed 's/^/# serve: /'
fi
_wait_until 60 eval '[ "$(attaches_of '"$victim"')" -ge 2 ]'
[ "$(attaches_of "$victim")" -ge 2 ] && pass worker-crash-reattaches || fail worker-crash-reattaches "$victim attached $(attaches_of "$victim") time(s)"
if [ -n "$sibling" ]; then
	_wait_until 60 eval '[ "$(attaches_of '"$sibling"')" -ge 2 ]'
	[ "$(attaches_of "$sibling")" -ge 2 ] && pass worker-crash-reattaches-sibling || fail worker-crash-reattaches-sibling "$sibling attached $(attaches_of "$sibling") time(s)"
else
	fail worker-crash-reattaches-sibling "no other device shared $victim's worker"
fi
wait "$fio_pid"
st=$?
if [ $st = 0 ] && ! grep -qi 'verify.*bad\|crc32c.*mismatch\|error=' "$VM_SCRATCH/fio-crash.log"; then
	pass fio-verify-across-worker-crash
else
	fail fio-verify-across-worker-crash "fio exit $st: $(tail -n 5 "$VM_SCRATCH/fio-crash.log" | tr '\n' ' ')"
fi
finish
