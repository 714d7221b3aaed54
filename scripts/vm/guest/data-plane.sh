#!/usr/bin/env bash
# Real-kernel tests of the data plane (issue 11): four RAM devices on two data-plane workers,
# exported through tcm_loop, written and verified by four concurrent fio jobs (crc32c, read back
# as it goes with verify_backlog and once more at the end), and the devices really spread over
# both workers. Each device's data is compared, not just fio's exit code.
# Run: scripts/vm/run-vm.sh scripts/vm/guest/data-plane.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$((32 * 1024 * 1024))
DEVICES="dp0 dp1 dp2 dp3"

cleanup() {
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
	return 0
}
trap cleanup EXIT

start_appliance --data-plane-threads 2 || { fail start "appliance did not start"; finish; }
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
finish
