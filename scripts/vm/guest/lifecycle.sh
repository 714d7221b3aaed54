#!/usr/bin/env bash
# Real-kernel tests of serve as an appliance (issue 6): config-declared devices, a second serve
# refused, `create` devices served on ADDED before enable returns, list, metrics, remove while
# another device is under fio, dev_size/write-cache reconfig and a vetoed one, SIGHUP reload, a
# burst of 32 devices, kill -9 five times under fio --verify on a RAM and a file device, an
# enable left waiting by a killed serve answered by its successor, and a stopped serve that
# leaves no enable hanging.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 19

APP=$APPLIANCE_BIN
CONFIG=$VM_SCRATCH/appliance.toml
METRICS=127.0.0.1:9540
PROV_HBA=user_8
MiB=$((1024 * 1024))
BURST=32

ip link set lo up 2>/dev/null

# --- helpers -------------------------------------------------------------------------------
log_mark() { LOG_MARK=$(wc -l <"$APPLIANCE_LOG"); }
# wait_for_new_log PATTERN [TIMEOUT_S]: like wait_for_log, for lines after the last log_mark.
wait_for_new_log() {
	local pat=$1 timeout=${2:-30}
	_wait_until "$timeout" eval 'tail -n +$((LOG_MARK + 1)) "$APPLIANCE_LOG" | grep -qE -- "$pat"' && return 0
	echo "no /$pat/ in the log after ${timeout}s" >&2
	return 1
}
new_log_count() { tail -n +$((LOG_MARK + 1)) "$APPLIANCE_LOG" | grep -cE -- "$1"; }
# create_json NAME ARGS...: `create --json`; prints the loop WWN when there is one.
created_wwn() { grep -o '"wwn": "naa\.[0-9a-f]*"' | cut -d'"' -f4; }
# done_within S CMD...: runs CMD in the background; fails if it is still running after S seconds.
done_within() {
	local seconds=$1 pid
	shift
	"$@" &
	pid=$!
	if _wait_until "$seconds" eval '! _alive '"$pid"; then
		wait "$pid"
		return $?
	fi
	return 124
}
metric() { curl -s "http://$METRICS/metrics" | grep -F "$1" | awk '{print $2}' | head -n 1; }
# wait_started [TIMEOUT_S]: serve finished starting (after the last log_mark); on a timeout the
# threads' kernel stacks go to the console, to show where it waits.
wait_started() {
	wait_for_new_log "serving [0-9]+ device\(s\)" "${1:-60}" && return 0
	local task
	for task in /proc/"$APPLIANCE_PID"/task/*; do
		diag "thread ${task##*/} $(cat "$task/comm" 2>/dev/null) wchan=$(cat "$task/wchan" 2>/dev/null)"
		sed 's/^/#     /' "$task/stack" 2>/dev/null | head -n 6
	done
	return 1
}

cleanup() {
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
}
trap cleanup EXIT

# --- 1. a device declared in the config file is created and served at start ---------------
cat >"$CONFIG" <<EOF
[serve]
metrics_listen = "$METRICS"

[devices.cfg0]
backstore = "ram/cfg0"
size = "32M"

[[devices.cfg0.exports]]
fabric = "loop"
EOF
log_mark
start_appliance --config "$CONFIG" --log-level debug || { fail start "serve did not start"; finish; }
if wait_for_new_log "attached uio[0-9]+ cfg0 config=ram/cfg0 size=32 MiB" 60 && wait_for_new_log "listening for netlink events" 30; then
	pass config-device-created-and-served
else
	fail config-device-created-and-served "$(tail -n 5 "$APPLIANCE_LOG" | tr '\n' ' ')"
fi

# --- 2. a second serve refuses --------------------------------------------------------------
second=$(timeout 30 "$APP" serve --config "$CONFIG" --metrics-listen off 2>&1)
st=$?
if [ "$st" = 1 ] && printf '%s' "$second" | grep -q "another tcmu-appliance serve (pid $APPLIANCE_PID)"; then
	pass second-serve-refused
else
	fail second-serve-refused "exit $st: $(printf '%s' "$second" | tail -n 2 | tr '\n' ' ')"
fi

# --- 3. create: served on ADDED before enable returns --------------------------------------
log_mark
r1_wwn=$("$APP" create r1 ram --size 64M --export loop --json | created_wwn)
if [ -n "$r1_wwn" ] && [ "$(new_log_count 'attached uio[0-9]+ r1 ')" = 1 ]; then
	pass create-served-when-enable-returns
else
	fail create-served-when-enable-returns "wwn=$r1_wwn; $(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
fi
truncate -s 64M "$VM_SCRATCH/f1.img"
f1_wwn=$("$APP" create f1 "file/$VM_SCRATCH/f1.img" --size 64M --export loop --json | created_wwn)
x1_wwn=$("$APP" create x1 ram/x1 --size 16M --export loop --json | created_wwn)
r1=$(wait_for_tcm_loop_disk "$r1_wwn") && f1=$(wait_for_tcm_loop_disk "$f1_wwn") && x1=$(wait_for_tcm_loop_disk "$x1_wwn")
diag "disks: r1=$r1 f1=$f1 x1=$x1"
if sg_inq "$r1" 2>&1 | grep -q 'tcmu-appliance' && sg_inq "$f1" 2>&1 | grep -q 'tcmu-appliance'; then pass created-disks-answer-sg_inq; else fail created-disks-answer-sg_inq "no INQUIRY"; fi

# --- 4. list --------------------------------------------------------------------------------
listing=$("$APP" list)
if printf '%s\n' "$listing" | grep -E "^r1 +$PROV_HBA +appliance/ram +64 MiB +loop $r1_wwn lun 0 +served \(pid $APPLIANCE_PID\) +uio[0-9]+ +tcmu-appliance \(cli\)" >/dev/null &&
	printf '%s\n' "$listing" | grep -qE "^cfg0 .*tcmu-appliance \(config\)"; then
	pass list
else
	fail list "$(printf '%s' "$listing" | tr '\n' '|')"
fi

# --- 5. metrics and health ------------------------------------------------------------------
dd if="$r1" of=/dev/null bs=64k count=16 iflag=direct status=none
reads=$(metric 'tcmu_appliance_commands_total{device="r1",group="read"}')
bytes=$(metric 'tcmu_appliance_read_bytes_total{device="r1"}')
health=$(curl -s -o /dev/null -w '%{http_code}' "http://$METRICS/healthz")
if [ "${reads:-0}" -ge 16 ] && [ "${bytes:-0}" -ge $((16 * 65536)) ] && [ "$health" = 200 ]; then
	pass metrics-and-healthz
else
	fail metrics-and-healthz "reads=$reads bytes=$bytes healthz=$health"
fi

# --- 6. remove one device while another is under fio ----------------------------------------
fio --name=under-remove --filename="$r1" --rw=randrw --bs=16k --size=16M --direct=1 --ioengine=libaio \
	--iodepth=8 --verify=crc32c --verify_backlog=64 --verify_fatal=1 --time_based --runtime=15 --output="$VM_SCRATCH/fio-remove.txt" >/dev/null 2>&1 &
fio_pid=$!
sleep 3
log_mark
if "$APP" remove x1 >/dev/null && wait_for_new_log "uio[0-9]+ removed; released: x1" 30 && [ ! -e "$x1" ]; then
	pass remove-device
else
	fail remove-device "$(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
fi
wait "$fio_pid"
st=$?
if [ "$st" = 0 ] && ! grep -qiE "verify|error" <(grep -iE "err=|verify:" "$VM_SCRATCH/fio-remove.txt" | grep -v "err= 0"); then
	pass other-device-unaffected-by-remove
else
	fail other-device-unaffected-by-remove "fio exit $st: $(grep -iE 'err|verify' "$VM_SCRATCH/fio-remove.txt" | head -n 3 | tr '\n' ' ')"
fi

# --- 7. RECONFIG: dev_size, write cache, and a vetoed grow ----------------------------------
r1_dir=$TARGET_CFG/core/$PROV_HBA/r1
if printf '%s\n' $((128 * MiB)) >"$r1_dir/attrib/dev_size"; then
	sg_turs "$r1" >/dev/null 2>&1 # takes the CAPACITY DATA HAS CHANGED unit attention
	cap=$(sg_readcap "$r1" 2>&1)
	if printf '%s' "$cap" | grep -q "Device size: $((128 * MiB)) bytes"; then pass reconfig-dev-size-readcap; else fail reconfig-dev-size-readcap "$(printf '%s' "$cap" | tr '\n' ' ')"; fi
else
	fail reconfig-dev-size-readcap "writing dev_size failed"
fi
# Caching mode page, byte 2 bit 2 is WCE; sg_modes prints the page as hex after ">> Caching".
caching_byte2() { sg_modes --page=8 "$1" 2>/dev/null | awk '/Caching/ { page = 1; next } page && $1 == "00" { print $4; exit }'; }
if printf '1\n' >"$r1_dir/attrib/emulate_write_cache" && byte=$(caching_byte2 "$r1") && [ -n "$byte" ] && [ $((0x$byte & 4)) != 0 ]; then
	pass reconfig-write-cache
else
	fail reconfig-write-cache "caching page byte 2: ${byte:-none}; $(sg_modes --page=8 "$r1" 2>&1 | tail -n 3 | tr '\n' ' ')"
fi
if qemu-img create -q -f qcow2 "$VM_SCRATCH/q1.qcow2" 32M && "$APP" create q1 "qcow2/$VM_SCRATCH/q1.qcow2" --size 32M >/dev/null; then
	q1_dir=$TARGET_CFG/core/$PROV_HBA/q1
	if ! printf '%s\n' $((64 * MiB)) >"$q1_dir/attrib/dev_size" 2>/dev/null && [ "$(cat "$q1_dir/attrib/dev_size")" = $((32 * MiB)) ]; then
		pass reconfig-veto-qcow2-grow
	else
		fail reconfig-veto-qcow2-grow "dev_size is now $(cat "$q1_dir/attrib/dev_size")"
	fi
	"$APP" remove q1 >/dev/null
else
	fail reconfig-veto-qcow2-grow "q1 not created"
fi

# --- 8. SIGHUP creates a device added to the config -----------------------------------------
cat >>"$CONFIG" <<EOF

[devices.cfg1]
backstore = "ram/cfg1"
size = "16M"
EOF
log_mark
kill -HUP "$APPLIANCE_PID"
if wait_for_new_log "attached uio[0-9]+ cfg1 " 60; then pass sighup-creates-declared-device; else fail sighup-creates-declared-device "no attach"; fi

# --- 9. a burst of 32 devices ---------------------------------------------------------------
log_mark
pids=()
for i in $(seq 0 $((BURST - 1))); do
	create_user_backstore "b$i" $((16 * MiB)) appliance/ram cmd_ring_size_mb=1 max_data_area_mb=4 &
	pids+=($!)
done
burst_failed=0
for pid in "${pids[@]}"; do wait "$pid" || burst_failed=$((burst_failed + 1)); done
attached=$(new_log_count "attached uio[0-9]+ b[0-9]+ ")
if [ "$burst_failed" = 0 ] && [ "$attached" = "$BURST" ]; then pass burst-32-served-on-added; else fail burst-32-served-on-added "$burst_failed enables failed, $attached attached"; fi
burst_wwn=naa.5001405eeee00032
tpg=$TARGET_CFG/loopback/$burst_wwn/tpgt_1
mkdir -p "$tpg" && printf 'naa.5001405eeee10032\n' >"$tpg/nexus"
for i in $(seq 0 $((BURST - 1))); do
	mkdir "$tpg/lun/lun_$i" && ln -s "$TARGET_CFG/core/$USER_HBA/b$i" "$tpg/lun/lun_$i/b$i"
done
answered=0
for i in $(seq 0 $((BURST - 1))); do
	disk=$(wait_for_tcm_loop_disk "$burst_wwn" "$i" 60) && sg_inq "$disk" 2>/dev/null | grep -q tcmu-appliance && answered=$((answered + 1))
done
if [ "$answered" = "$BURST" ]; then pass burst-32-answer-sg_inq; else fail burst-32-answer-sg_inq "$answered of $BURST"; fi
_tcm_loop_remove "$TARGET_CFG/loopback/$burst_wwn"
log_mark
pids=()
for i in $(seq 0 $((BURST - 1))); do
	rmdir "$TARGET_CFG/core/$USER_HBA/b$i" &
	pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
if _wait_until 60 eval '[ "$(new_log_count "removed; released: b[0-9]+")" = "$BURST" ]'; then pass burst-32-removed; else fail burst-32-removed "$(new_log_count 'removed; released: b')"; fi

# --- 10. kill -9 five times under fio --verify on a RAM and a file device -------------------
timeout 600 fio --output="$VM_SCRATCH/fio-kill.txt" --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite --bsrange=4k-64k \
	--size=32M --loops=12 --verify=crc32c --verify_backlog=64 --verify_fatal=1 --do_verify=1 \
	--name=ram --filename="$r1" --name=file --filename="$f1" >/dev/null 2>&1 &
fio_pid=$!
kills=0
resets=0
restart_problems=""
for round in 1 2 3 4 5; do
	sleep 3
	_alive "$fio_pid" || { diag "fio finished before kill $round"; break; }
	kill -KILL "$APPLIANCE_PID"
	wait "$APPLIANCE_PID" 2>/dev/null
	APPLIANCE_PID=
	kills=$((kills + 1))
	sleep 1
	log_mark
	start_appliance --config "$CONFIG" --log-level debug || { fail kill9-restart "serve did not restart (round $round)"; break; }
	wait_started 60 || restart_problems="$restart_problems round $round: serve not serving after 60 s;"
	resets=$((resets + $(new_log_count "reset with BUSY")))
done
wait "$fio_pid"
st=$?
diag "kills=$kills rings reset=$resets; fio: $(grep -E 'WRITE:|READ:' "$VM_SCRATCH/fio-kill.txt" | tr -s ' ' | tr '\n' ' ')"
if [ "$kills" = 5 ] && [ "$st" = 0 ] && [ -z "$restart_problems" ] && ! grep -qiE "verify.*(fail|bad)|crc32c.*mismatch|bad magic" "$VM_SCRATCH/fio-kill.txt"; then
	pass kill9-x5-under-fio-verify-ram-and-file
else
	fail kill9-x5-under-fio-verify-ram-and-file "kills=$kills fio exit $st;$restart_problems $(grep -iE 'err|verify|bad' "$VM_SCRATCH/fio-kill.txt" | head -n 4 | tr '\n' ' ')"
fi

# --- 11. an enable left waiting by a killed serve is answered by the next one ---------------
kill -KILL "$APPLIANCE_PID"
wait "$APPLIANCE_PID" 2>/dev/null
APPLIANCE_PID=
create_user_backstore late1 $((16 * MiB)) appliance/ram &
late_pid=$!
sleep 2
if _alive "$late_pid"; then diag "late1 enable waits while no serve runs (SUPP_KERN_CMD_REPLY left on by the killed one)"; fi
log_mark
start_appliance --config "$CONFIG" --log-level debug
if wait_started 60 && _wait_until 60 eval '! _alive '"$late_pid" && wait "$late_pid" && wait_for_new_log "attached uio[0-9]+ late1 " 30; then
	pass killed-serve-pending-enable-answered-by-successor
else
	fail killed-serve-pending-enable-answered-by-successor "$(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
fi

# --- 12. a stopped serve leaves no enable hanging -------------------------------------------
st=0
stop_appliance 60 || st=$?
if [ "$st" = 0 ]; then pass sigterm-clean-exit; else fail sigterm-clean-exit "exit status $st"; fi
if done_within 15 create_user_backstore late2 $((16 * MiB)) appliance/ram; then
	pass stopped-serve-enable-does-not-hang
else
	fail stopped-serve-enable-does-not-hang "enable still waiting after 15 s"
fi
grep -E "blocked|block_dev" "$TARGET_CFG/core/$PROV_HBA/r1/action/block_dev" >/dev/null && diag "r1 after stop: $(cat "$TARGET_CFG/core/$PROV_HBA/r1/action/block_dev")"

diag "appliance log (warnings and errors):"
grep -E 'WARN|ERROR' "$APPLIANCE_LOG" | tail -n 25 | sed 's/^/#   /'
if [ "$_t_fail" != 0 ]; then
	diag "appliance log (last 80 lines):"
	tail -n 80 "$APPLIANCE_LOG" | sed 's/^/#   /'
fi
finish
