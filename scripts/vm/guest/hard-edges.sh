#!/usr/bin/env bash
# Real-kernel hard edges (issue 12): devices created at random moments 0-10 s after serve starts
# (so during its start-up scan too) all attach, alone and with tcmu-runner serving its own
# device in the same kernel; and kill -9 five times during fio randwrite+verify on a RAM and a
# file device at once, three times over, costs no write and no verify. Every wait is bounded, and
# running out of time is a FAIL.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 11

APP=$APPLIANCE_BIN
MiB=$((1024 * 1024))
DEVICES=20
IMAGES=$VM_SCRATCH/hard-edges
mkdir -p "$IMAGES"
ip link set lo up 2>/dev/null

cleanup() {
	[ -n "${VM_OUT:-}" ] && cp "$APPLIANCE_LOG" "$VM_SCRATCH"/fio-kill-* "$VM_OUT/" 2>/dev/null
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	[ -n "$RUNNER_PID" ] && kill -KILL "$RUNNER_PID" 2>/dev/null
	teardown_target
}
trap cleanup EXIT

log_mark() { LOG_MARK=$(wc -l <"$APPLIANCE_LOG"); }
new_log() { tail -n +$((LOG_MARK + 1)) "$APPLIANCE_LOG"; }
new_log_count() { new_log | grep -cE -- "$1"; }
wait_for_new_log() { # PATTERN [TIMEOUT_S]
	local pattern=$1
	_wait_until "${2:-30}" eval 'new_log | grep -qE -- "$pattern"'
}
created_wwn() { grep -o '"wwn": "naa\.[0-9a-f]*"' | cut -d'"' -f4; }

# --- 20 devices created at random moments 0-10 s after serve starts ------------------------------
# random_creates TAG: starts serve, creates TAG1..TAG20 with `create` at random moments, waits for
# them (bounded), and sets CREATE_FAILED / ATTACHED / REFUSED. Serve keeps running.
random_creates() {
	local tag=$1 i pids=() status
	log_mark
	start_appliance --metrics-listen off --log-level debug || { CREATE_FAILED=$DEVICES; return 1; }
	for i in $(seq 1 $DEVICES); do
		(sleep "$((RANDOM % 10)).$((RANDOM % 10))" && timeout 60 "$APP" create "$tag$i" "ram/$tag$i" --size 8M >"$VM_SCRATCH/create-$tag$i.txt" 2>&1) &
		pids+=($!)
	done
	CREATE_FAILED=0
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { CREATE_FAILED=$((CREATE_FAILED + 1)); diag "create $tag$((i + 1)): $(tr '\n' ' ' <"$VM_SCRATCH/create-$tag$((i + 1)).txt")"; }
	done
	_wait_until 30 eval '[ "$(new_log_count "attached uio[0-9]+ $tag[0-9]+ ")" -ge $DEVICES ]'
	ATTACHED=$(new_log_count "attached uio[0-9]+ $tag[0-9]+ ")
	REFUSED=$(new_log_count "refused|not served|vanished")
	[ "$REFUSED" = 0 ] || new_log | grep -E "refused|not served|vanished" | head -n 3 | sed 's/^/# /'
}

remove_all() { # TAG
	local i
	for i in $(seq 1 $DEVICES); do timeout 60 "$APP" remove "$1$i" >/dev/null 2>&1 || diag "remove $1$i failed"; done
}

random_creates a
if [ "$CREATE_FAILED" = 0 ] && [ "$ATTACHED" = $DEVICES ] && [ "$REFUSED" = 0 ]; then
	pass random-creates-alone-all-attached
else
	fail random-creates-alone-all-attached "$CREATE_FAILED creates failed, $ATTACHED of $DEVICES attached, $REFUSED refused"
fi
remove_all a
stop_appliance || diag "serve exited with status $?"

# --- the same with tcmu-runner serving its own device in the same kernel ---------------------------
truncate -s $((32 * MiB)) "$IMAGES/runner.img"
runner_disk=
if start_tcmu_runner && timeout 60 bash -c ". '$(dirname "${BASH_SOURCE[0]}")/lib.sh'; create_user_backstore rr $((32 * MiB)) 'qcow/$IMAGES/runner.img'" &&
	runner_disk=$(export_tcm_loop rr) && sg_inq "$runner_disk" 2>/dev/null | grep -qi "tcmu"; then
	pass runner-device-up
else
	fail runner-device-up "tcmu-runner or its device: $(tail -n 3 "$VM_SCRATCH/runner.out" | tr '\n' ' ')"
fi

random_creates b
if [ "$CREATE_FAILED" = 0 ] && [ "$ATTACHED" = $DEVICES ] && [ "$REFUSED" = 0 ]; then
	pass random-creates-with-tcmu-runner-all-attached
else
	fail random-creates-with-tcmu-runner-all-attached "$CREATE_FAILED creates failed, $ATTACHED of $DEVICES attached, $REFUSED refused"
fi
opted=0
for i in $(seq 1 $DEVICES); do
	[ "$(cat "$TARGET_CFG/core/user_8/b$i/attrib/nl_reply_supported" 2>/dev/null)" = -1 ] && grep -q "tcmu-runner (pid $RUNNER_PID)" "$VM_SCRATCH/create-b$i.txt" && opted=$((opted + 1))
done
if [ "$opted" = $DEVICES ]; then pass created-opted-out-of-replies-naming-tcmu-runner; else fail created-opted-out-of-replies-naming-tcmu-runner "$opted of $DEVICES"; fi
# tcmu-runner's own device still serves data, beside ours.
head -c $((1 * MiB)) /dev/urandom >"$VM_SCRATCH/runner-data.bin"
if [ -n "$runner_disk" ] && timeout 60 dd if="$VM_SCRATCH/runner-data.bin" of="$runner_disk" bs=64k oflag=direct status=none &&
	timeout 60 dd if="$runner_disk" of="$VM_SCRATCH/runner-back.bin" bs=64k count=16 iflag=direct status=none &&
	cmp -s "$VM_SCRATCH/runner-data.bin" "$VM_SCRATCH/runner-back.bin"; then
	pass runner-device-data-intact-beside-ours
else
	fail runner-device-data-intact-beside-ours "read back differs or I/O failed"
fi
remove_all b
stop_appliance || diag "serve exited with status $?"
unexport_tcm_loop rr
remove_user_backstore rr
stop_tcmu_runner

# --- kill -9 five times during fio randwrite+verify, RAM and file at once, three times -------------
start_appliance --allow-root "$IMAGES" --metrics-listen off --log-level debug || { fail kill9-start "serve did not start"; finish; }
truncate -s $((96 * MiB)) "$IMAGES/k1.img"
k_ram=$("$APP" create kr ram/kr --size 96M --export loop --json | created_wwn)
k_file=$("$APP" create kf "file/$IMAGES/k1.img" --size 96M --export loop --json | created_wwn)
ram_disk=$(wait_for_tcm_loop_disk "$k_ram" 0 60) && file_disk=$(wait_for_tcm_loop_disk "$k_file" 0 60) ||
	{ fail kill9-devices "no tcm_loop disks (ram=$k_ram file=$k_file)"; finish; }
diag "kill -9 devices: ram $ram_disk, file $file_disk"

FIO_JOB=(--direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k --size=96M --verify=crc32c --verify_fatal=1
	--name=ram --filename="$ram_disk" --name=file --filename="$file_disk")
for rep in 1 2 3; do
	out=$VM_SCRATCH/fio-kill-$rep.txt
	# verify_backlog reads back what was written while it writes; the separate pass below re-reads it all.
	timeout 600 fio --output="$out" "${FIO_JOB[@]}" --randseed=$rep --verify_backlog=64 --do_verify=1 >/dev/null 2>&1 &
	fio_pid=$!
	kills=0 problems=""
	for round in 1 2 3 4 5; do
		sleep 3
		_alive "$fio_pid" || { problems="$problems fio finished before kill $round;"; break; }
		kill -KILL "$APPLIANCE_PID"
		wait "$APPLIANCE_PID" 2>/dev/null
		APPLIANCE_PID=
		kills=$((kills + 1))
		log_mark
		if ! start_appliance --allow-root "$IMAGES" --metrics-listen off --log-level debug; then
			problems="$problems serve did not restart after kill $round;"
			break
		fi
		if ! wait_for_new_log "serving [0-9]+ device\(s\)" 60; then problems="$problems restart $round not serving after 60 s;"; fi
		for name in kr kf; do
			wait_for_new_log "attached uio[0-9]+ $name " 30 || problems="$problems $name not attached after restart $round;"
		done
		[ "$(new_log_count 'refused|not served|vanished')" = 0 ] || problems="$problems refusal after restart $round: $(new_log | grep -E 'refused|not served|vanished' | head -n 1);"
	done
	wait "$fio_pid"
	st=$?
	[ "$st" = 124 ] && problems="$problems fio still running after 600 s;"
	diag "rep $rep: kills=$kills fio exit $st, $(grep -E 'WRITE:|READ:' "$out" | tr -s ' ' | tr '\n' ' ')"
	if [ "$kills" = 5 ] && [ "$st" = 0 ] && [ -z "$problems" ] && ! grep -qiE "error=|verify.*(fail|bad)|crc32c.*mismatch|bad magic" "$out"; then
		pass "kill9-x5-rep$rep-no-write-or-verify-error"
	else
		fail "kill9-x5-rep$rep-no-write-or-verify-error" "kills=$kills fio exit $st;$problems $(grep -iE 'error|verify|bad' "$out" | head -n 3 | tr '\n' ' ')"
	fi
	# Every block written above, read back and checked once more, with serve left alone.
	if timeout 300 fio --output="$out.verify" "${FIO_JOB[@]}" --randseed=$rep --verify_only >/dev/null 2>&1 &&
		! grep -qiE "error=|verify.*(fail|bad)|crc32c.*mismatch|bad magic" "$out.verify"; then
		pass "kill9-rep$rep-separate-verify-pass"
	else
		fail "kill9-rep$rep-separate-verify-pass" "$(grep -iE 'error|verify|bad' "$out.verify" | head -n 3 | tr '\n' ' ')"
	fi
done
finish
