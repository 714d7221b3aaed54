#!/usr/bin/env bash
# Real-kernel test of highly available gateways (docs/ha.md): two gateways export one image
# through two iSCSI targets on two loopback portals (127.0.0.1:3260, 127.0.0.2:3260); the VM's
# open-iscsi logs in to both and dm-multipath (multipathd, hardware_handler "1 alua", prio alua,
# path_grouping_policy failover, path_checker tur) makes ONE map of the two paths in TWO path groups. fio with
# crc32c verify runs on the map while the active gateway dies: I/O goes on through the other one
# without a verify error, and the longest stall of fio's completions is printed as the failover
# time. The first gateway comes back, SET TARGET PORT GROUPS (sg_stpg) on its path makes its group
# active/optimized again under a second fio verify, and REPORT TARGET PORT GROUPS gives the same
# groups and states on both paths at every step.
#
# Usage: ha.sh [appliance|kernel]
#   appliance (default): two `tcmu-appliance serve` processes (subtypes appliance and gwb, run
#       dirs /run/gw-a and /run/gw-b) serve one rbd image of a Ceph cluster started in the VM
#       (scripts/ceph/test-cluster.sh); gateway A dies by SIGKILL and is started again.
#   kernel: the plumbing alone: one kernel fileio backstore (tmpfs file) with kernel ALUA groups
#       in both targets; "gateway A dies" disables A's TPG and moves the ALUA states as the rbd
#       lock would; it comes back by enabling the TPG.
# Reads on the non-optimized gateway run without the lock (a first version refused them with
# NOT READY 04/0A, and the kernel's partition scan of that path retried its read of sector 0 for
# 180 s, twice): an active/non-optimized port executes I/O (SPC-4 5.15.2.4.3).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MODE=${1:-appliance}
case $MODE in appliance | kernel) ;; *) echo "usage: ha.sh [appliance|kernel]" >&2; exit 2 ;; esac
plan 13

APP=$APPLIANCE_BIN
MiB=$((1024 * 1024))
SIZE=$((64 * MiB))
SERIAL=ha0-6c1d2a
IQN_A=iqn.2003-01.org.example.ha:gw-a
IQN_B=iqn.2003-01.org.example.ha:gw-b
PORTAL_A=127.0.0.1:3260
PORTAL_B=127.0.0.2:3260
# cmd_time_out of the HA devices: a killed handler's commands stay in the kernel's ring until it
# expires; then they fail (NOT READY, LOGICAL UNIT COMMUNICATION FAILURE) and dm-multipath moves
# them to the other path. 10 s (default 30): well under the initiator's 30 s SCSI command timeout,
# so the target answers before the initiator aborts, and above what a live handler needs on rbd.
CMD_TIME_OUT=10
if [ "$MODE" = kernel ]; then
	FIO_SIZE=6M FIO_RATE=50 FIO_DELAY=8
else
	FIO_SIZE=12M FIO_RATE=50 FIO_DELAY=10
fi
FIO_TIMEOUT=600
CLUSTER=$VM_SCRATCH/ceph
LOG_A=$VM_SCRATCH/gw-a.log
LOG_B=$VM_SCRATCH/gw-b.log
MPD_LOG=$VM_SCRATCH/multipathd.log
PID_A= PID_B= MPD_PID= conf= BS_DIR= disk_a= disk_b= map= mpdev=
T_START=$SECONDS
ip link set lo up 2>/dev/null

# --- cleanup (every step bounded) ------------------------------------------------------------
LOG_PUMP=
cleanup() {
	local m
	[ -n "$LOG_PUMP" ] && kill "$LOG_PUMP" 2>/dev/null
	[ -n "${VM_OUT:-}" ] && cp "$LOG_A" "$LOG_B" "$MPD_LOG" "$VM_SCRATCH"/fio-*.txt "$VM_OUT/" 2>/dev/null
	for m in $(dmsetup ls --target multipath 2>/dev/null | awk '$1 != "No" { print $1 }'); do
		timeout 10 dmsetup message "$m" 0 fail_if_no_path >/dev/null 2>&1
	done
	[ -n "$MPD_PID" ] && kill "$MPD_PID" 2>/dev/null && _wait_until 10 eval '! _alive '"$MPD_PID"
	timeout 30 multipath -F >/dev/null 2>&1
	iscsi_logout_all
	stop_iscsid
	if [ "$MODE" = kernel ]; then
		lio_iscsi_remove "$IQN_A"
		lio_iscsi_remove "$IQN_B"
		[ -n "$BS_DIR" ] && rmdir "$BS_DIR" 2>/dev/null
	else
		timeout 60 "$APP" remove ha-a --run-dir /run/gw-a >/dev/null 2>&1
		timeout 60 "$APP" remove ha-b --run-dir /run/gw-b >/dev/null 2>&1
		[ -n "$PID_A" ] && kill -KILL "$PID_A" 2>/dev/null
		[ -n "$PID_B" ] && kill -KILL "$PID_B" 2>/dev/null
		lio_iscsi_remove "$IQN_A"
		lio_iscsi_remove "$IQN_B"
		teardown_target
		bash "$VM_REPO_ROOT/scripts/ceph/test-cluster.sh" stop "$CLUSTER" >/dev/null 2>&1
	fi
	diag "ha.sh $MODE: $((SECONDS - T_START)) s in the guest"
}
trap cleanup EXIT
# With VM_OUT, the logs also go there every 10 s: a guest that hangs past VM_TIMEOUT leaves them.
if [ -n "${VM_OUT:-}" ]; then
	(while sleep 10; do cp "$LOG_A" "$LOG_B" "$MPD_LOG" "$VM_OUT/" 2>/dev/null; done) &
	LOG_PUMP=$!
fi

# --- the initiator side: writable /etc, iscsid, multipath.conf -------------------------------
if ! writable_etc; then fail ha-provision "cannot overlay /etc"; finish; fi
# replacement_timeout 5: a session that cannot reconnect fails its commands after 5 s (default
# 120), so dm-multipath sees a gateway whose target is gone quickly.
start_iscsid 5 || { fail ha-provision "iscsid did not start"; finish; }
write_multipath_conf || { fail ha-provision "cannot write /etc/multipath.conf"; finish; }

# --- the two gateways ------------------------------------------------------------------------
start_gw() { # a|b: serve for gateway A (subtype appliance) or B (subtype gwb)
	if [ "$1" = a ]; then
		echo "--- start ---" >>"$LOG_A"
		"$APP" serve --subtype appliance --run-dir /run/gw-a --log-level debug >>"$LOG_A" 2>&1 &
		PID_A=$!
	else
		echo "--- start ---" >>"$LOG_B"
		"$APP" serve --subtype gwb --run-dir /run/gw-b --metrics-listen off --log-level debug >>"$LOG_B" 2>&1 &
		PID_B=$!
	fi
	sleep 1
	_alive "$([ "$1" = a ] && echo "$PID_A" || echo "$PID_B")"
}

# create_gw NAME SUBTYPE RUN_DIR IQN PORTAL GROUP ID STATE PEER_GROUP PEER_ID PEER_STATE
# With create's ALUA flags when it has them; otherwise create without export, then serial, ALUA
# groups and the iSCSI export by hand in configfs.
have_alua_flags() { "$APP" create --help 2>&1 | grep -q -- '--alua-group'; }
create_gw() {
	local name=$1 subtype=$2 rundir=$3 iqn=$4 portal=$5 g=$6 id=$7 st=$8 pg=$9 pid=${10} pst=${11} dir
	local cfg="rbd/rbd/ha0;conf=$conf"
	if have_alua_flags; then
		timeout 120 "$APP" create "$name" "$cfg" --size 64M --subtype "$subtype" --run-dir "$rundir" \
			--cmd-time-out "$CMD_TIME_OUT" --serial "$SERIAL" --export iscsi --iqn "$iqn" --portal "$portal" \
			--allow-anyone --alua-group "$g" --alua-id "$id" --alua-state "$st" --alua-peer "$pg:$pid:$pst"
		return
	fi
	diag "create has no --alua-group: configuring serial, ALUA groups and the export by hand"
	timeout 120 "$APP" create "$name" "$cfg" --size 64M --subtype "$subtype" --run-dir "$rundir" \
		--cmd-time-out "$CMD_TIME_OUT" || return 1
	dir=$(backstore_dir "$name") || return 1
	_cfg_write "$dir/wwn/vpd_unit_serial" "$SERIAL" || return 1
	alua_group_add "$dir" "$g" "$id" "$([ "$st" = active-optimized ] && echo 0 || echo 1)" || return 1
	alua_group_add "$dir" "$pg" "$pid" "$([ "$pst" = active-optimized ] && echo 0 || echo 1)" || return 1
	lio_iscsi_export "$iqn" "$portal" "$dir" "$g"
}

provision_kernel() {
	BS_DIR=$TARGET_CFG/core/fileio_0/ha0
	mkdir -p "$BS_DIR" || return 1
	_cfg_write "$BS_DIR/control" "fd_dev_name=$VM_SCRATCH/ha0.img,fd_dev_size=$SIZE" || return 1
	_cfg_write "$BS_DIR/enable" 1 || return 1
	_cfg_write "$BS_DIR/wwn/vpd_unit_serial" "$SERIAL" || return 1
	alua_group_add "$BS_DIR" gw-a 1 0 || return 1
	alua_group_add "$BS_DIR" gw-b 2 1 || return 1
	lio_iscsi_export "$IQN_A" "$PORTAL_A" "$BS_DIR" gw-a || return 1
	lio_iscsi_export "$IQN_B" "$PORTAL_B" "$BS_DIR" gw-b
}

provision_appliance() {
	local t0=$SECONDS
	conf=$(timeout 300 bash "$VM_REPO_ROOT/scripts/ceph/test-cluster.sh" start "$CLUSTER" --lifetime 1500 2>"$VM_SCRATCH/ceph-start.txt") || {
		echo "test-cluster.sh start failed: $(tail -n 3 "$VM_SCRATCH/ceph-start.txt" | tr '\n' ' ')" >&2
		return 1
	}
	diag "ceph cluster up in $((SECONDS - t0)) s"
	timeout 120 rbd -c "$conf" create rbd/ha0 --size 64M || return 1
	start_gw a || { echo "gateway A's serve exited: $(tail -n 3 "$LOG_A" | tr '\n' ' ')" >&2; return 1; }
	start_gw b || { echo "gateway B's serve exited: $(tail -n 3 "$LOG_B" | tr '\n' ' ')" >&2; return 1; }
	create_gw ha-a appliance /run/gw-a "$IQN_A" "$PORTAL_A" gw-a 1 active-optimized gw-b 2 active-non-optimized || return 1
	create_gw ha-b gwb /run/gw-b "$IQN_B" "$PORTAL_B" gw-b 2 active-non-optimized gw-a 1 active-optimized || return 1
	BS_DIR=$(backstore_dir ha-a)
	# create makes the ALUA groups after enable (after serve attached): each serve takes them up
	# within a second; the initiator must see TPGS and the groups at its first probe.
	wait_for_log "ha-a: ALUA group 1" 60 "$LOG_A" >/dev/null || { echo "gateway A did not take up its ALUA groups" >&2; return 1; }
	wait_for_log "ha-b: ALUA group 2" 60 "$LOG_B" >/dev/null || { echo "gateway B did not take up its ALUA groups" >&2; return 1; }
}

t0=$SECONDS
if provision_"$MODE" >"$VM_SCRATCH/provision.txt" 2>&1; then
	pass ha-provision
	diag "gateways provisioned ($MODE) in $((SECONDS - t0)) s"
else
	fail ha-provision "$(tail -n 4 "$VM_SCRATCH/provision.txt" | tr '\n' ' ')"
	finish
fi

# --- two iSCSI paths ---------------------------------------------------------------------------
# rtpg_states DEV: "ID=STATE ..." of REPORT TARGET PORT GROUPS (sg_rtpg -d) on DEV, groups in the
# order reported, the kernel's empty default group (id 0) left out; ao an s u o t.
rtpg_states() {
	timeout 90 sg_rtpg -d "$1" 2>/dev/null | awk '
		/target port group id/ { id = $6; sub(/,$/, "", id) }
		/asymmetric access state/ {
			s = $0; sub(/.*state : /, "", s); split(s, a, " ")
			name = (a[1] == "0x00") ? "ao" : (a[1] == "0x01") ? "an" : (a[1] == "0x02") ? "s" : (a[1] == "0x03") ? "u" : (a[1] == "0x0e") ? "o" : (a[1] == "0x0f") ? "t" : a[1]
			if (id != "0x0") printf "%s%s=%s", sep, id, name; sep = " "
		}
		END { print "" }'
}
# check_rtpg NAME EXPECTED DEV...: every DEV reports EXPECTED and the very same RTPG text.
check_rtpg() {
	local name=$1 want=$2 d first= got txt why=
	shift 2
	for d in "$@"; do
		got=$(rtpg_states "$d")
		[ "$got" = "$want" ] || why="$why $d: '$got' (want '$want');"
		txt=$(timeout 90 sg_rtpg -d "$d" 2>&1 | sed 's/status code : .*//')
		if [ -z "$first" ]; then first=$txt; elif [ "$txt" != "$first" ]; then why="$why RTPG text differs between paths;"; fi
	done
	if [ -z "$why" ]; then pass "$name"; diag "RTPG on $*: $want"; else
		fail "$name" "$why"
		for d in "$@"; do diag "sg_rtpg -d $d:"; timeout 90 sg_rtpg -d "$d" 2>&1 | sed 's/^/#   /'; done
	fi
}
serial_of() { timeout 90 sg_vpd -p sn "$1" 2>/dev/null | sed -n 's/^ *Unit serial number: *//p' | head -n 1; }

t0=$SECONDS
if iscsi_login "$IQN_A" "$PORTAL_A" && iscsi_login "$IQN_B" "$PORTAL_B" &&
	disk_a=$(iscsi_session_disk "$IQN_A" "$PORTAL_A") && disk_b=$(iscsi_session_disk "$IQN_B" "$PORTAL_B") &&
	[ "$disk_a" != "$disk_b" ] && [ "$(serial_of "$disk_a")" = "$SERIAL" ] && [ "$(serial_of "$disk_b")" = "$SERIAL" ]; then
	pass ha-iscsi-two-paths-same-serial
	diag "path A $disk_a ($PORTAL_A), path B $disk_b ($PORTAL_B), serial $SERIAL, logins in $((SECONDS - t0)) s"
else
	fail ha-iscsi-two-paths-same-serial "disks '$disk_a' '$disk_b', serials '$(serial_of "$disk_a")' '$(serial_of "$disk_b")'; sessions: $(iscsiadm -m session 2>&1 | tr '\n' ' ')"
	finish
fi
check_rtpg ha-rtpg-initial "0x1=ao 0x2=an" "$disk_a" "$disk_b"

# --- dm-multipath ------------------------------------------------------------------------------
mm_a=$(majmin "$disk_a") mm_b=$(majmin "$disk_b")
udev_mark_initialized "$disk_a" "$disk_b"
multipathd -d -s -v3 >"$MPD_LOG" 2>&1 &
MPD_PID=$!
map_ready() { map=$(mpath_map) && [ -n "$map" ] && [ "$(mpath_paths "$map" | wc -l)" = 2 ]; }
if ! _wait_until 30 map_ready; then
	diag "multipathd made no map in 30 s; running multipath -v3"
	timeout 60 multipath -v3 >"$VM_SCRATCH/multipath-v3.txt" 2>&1
	_wait_until 30 map_ready
fi
# group_state MM: state (A/E/D) of the group holding path MM; path_state MM: A/F.
group_of() { mpath_paths "$map" | awk -v m="$1" '$3 == m { print $1; exit }'; }
group_state() { mpath_paths "$map" | awk -v m="$1" '$3 == m { print $2; exit }'; }
path_state() { mpath_paths "$map" | awk -v m="$1" '$3 == m { print $4; exit }'; }
nmaps=$(dmsetup ls --target multipath 2>/dev/null | grep -vc '^No ')
# dm-multipath activates a path group on the first I/O: read a block, then look.
if [ -n "$map" ]; then
	mpdev=/dev/mapper/$map
	[ -b "$mpdev" ] || mpdev=$(mpath_dev)
	timeout 60 dd if="$mpdev" of=/dev/null bs=4k count=1 iflag=direct status=none || diag "reading $mpdev failed"
	_wait_until 10 eval '[ "$(group_state "$mm_a")" = A ]'
fi
if [ -n "$map" ] && [ "$nmaps" = 1 ] && [ "$(mpath_paths "$map" | awk '{ print $1 }' | sort -u | wc -l)" = 2 ] &&
	[ "$(group_state "$mm_a")" = A ] && [ "$(path_state "$mm_a")" = A ] && [ "$(path_state "$mm_b")" = A ] &&
	[ "$(group_of "$mm_a")" != "$(group_of "$mm_b")" ]; then
	pass ha-multipath-one-map-two-groups
	diag "map $map ($mpdev): $(mpath_paths "$map" | tr '\n' ';')"
	timeout 20 multipath -ll 2>/dev/null | sed 's/^/#   /'
else
	fail ha-multipath-one-map-two-groups "maps: $nmaps, map '$map': $(mpath_paths "$map" | tr '\n' ';') (A $mm_a, B $mm_b)"
	diag "multipathd log tail:"
	tail -n 30 "$MPD_LOG" | sed 's/^/#   /'
	[ -f "$VM_SCRATCH/multipath-v3.txt" ] && tail -n 30 "$VM_SCRATCH/multipath-v3.txt" | sed 's/^/#   /'
	finish
fi

# --- fio with verify while something happens ---------------------------------------------------
writes_of() { awk '{ print $5 }' "/sys/class/block/${1#/dev/}/stat"; } # writes completed
# fio_during TAG ACTION...: fio randwrite + crc32c verify (verify_backlog) on the map, ACTION run
# FIO_DELAY s after fio starts. Sets FIO_OK (1 if fio exited 0 with no verify error) and
# FIO_GAP_MS / FIO_GAP_AT_MS / FIO_ACTION_AT_MS (the longest pause between two completions and
# when it began, and when ACTION ran, in ms since fio started) from fio's per-I/O latency log.
fio_during() {
	local tag=$1 out lat t0 ta rc pid
	shift
	out=$VM_SCRATCH/fio-$tag.txt lat=$VM_SCRATCH/lat-$tag
	FIO_OK=0 FIO_GAP_MS=- FIO_GAP_AT_MS=- FIO_ACTION_AT_MS=-
	t0=$(date +%s%3N)
	timeout "$FIO_TIMEOUT" fio --output="$out" --name="$tag" --filename="$mpdev" --direct=1 --ioengine=libaio \
		--iodepth=4 --rw=randwrite --bs=4k --size="$FIO_SIZE" --rate_iops="$FIO_RATE" --verify=crc32c \
		--verify_backlog=16 --do_verify=1 --verify_fatal=1 --write_lat_log="$lat" --log_avg_msec=0 >/dev/null 2>&1 &
	pid=$!
	sleep "$FIO_DELAY"
	ta=$(date +%s%3N)
	"$@"
	FIO_ACTION_AT_MS=$((ta - t0))
	rc=0
	wait "$pid" || rc=$?
	if [ "$rc" = 0 ] && grep -q 'err= 0' "$out" && ! grep -qiE 'verify.*(fail|bad)|crc32c.*(mismatch|bad)|bad magic' "$out"; then
		FIO_OK=1
	else
		diag "fio $tag exited $rc:"
		tail -n 40 "$out" | sed 's/^/#   /'
	fi
	read -r FIO_GAP_MS FIO_GAP_AT_MS < <(cat "$lat"_clat.*.log 2>/dev/null | awk -F, '{ print $1 + 0 }' | sort -n |
		awk 'NR > 1 && $1 - p > g { g = $1 - p; at = p } { p = $1 } END { print g + 0, at + 0 }')
	diag "fio $tag: $(grep -E '^ *(write|read):' "$out" | tr -s ' ' | tr '\n' ' ')"
	diag "fio $tag: action at $((FIO_ACTION_AT_MS / 1000)).$(printf '%03d' $((FIO_ACTION_AT_MS % 1000))) s; longest pause between completions $FIO_GAP_MS ms, from $FIO_GAP_AT_MS ms (fio's clock)"
}

# --- gateway A dies under fio ------------------------------------------------------------------
kill_a() {
	if [ "$MODE" = kernel ]; then
		_cfg_write "$TARGET_CFG_ISCSI/$IQN_A/tpgt_1/enable" 0
		# what the rbd lock would do: B takes over
		_cfg_write "$BS_DIR/alua/gw-a/alua_access_state" 1
		_cfg_write "$BS_DIR/alua/gw-b/alua_access_state" 0
	else
		kill -KILL "$PID_A"
		wait "$PID_A" 2>/dev/null
		PID_A=
	fi
	diag "gateway A gone at $(date +%T.%3N)"
}
wb0=$(writes_of "$disk_b")
fio_during failover kill_a
wb1=$(writes_of "$disk_b")
if [ "$FIO_OK" = 1 ]; then
	pass ha-failover-fio-verify
	diag "FAILOVER TIME ($MODE): ${FIO_GAP_MS} ms without a completed I/O (gateway A killed at ${FIO_ACTION_AT_MS} ms, pause from ${FIO_GAP_AT_MS} ms)"
else
	fail ha-failover-fio-verify "fio failed or reported verify errors (see above)"
fi
if [ "$(path_state "$mm_a")" = F ] && [ "$(group_state "$mm_b")" = A ] && [ "$(path_state "$mm_b")" = A ] && [ $((wb1 - wb0)) -gt 100 ]; then
	pass ha-failover-io-on-path-b
	diag "after failover: $(mpath_paths "$map" | tr '\n' ';') B wrote $((wb1 - wb0)) times"
else
	fail ha-failover-io-on-path-b "paths $(mpath_paths "$map" | tr '\n' ';') (A $mm_a, B $mm_b), B's writes $((wb1 - wb0))"
fi
check_rtpg ha-rtpg-after-failover "0x1=an 0x2=ao" "$disk_b"

# --- gateway A comes back ------------------------------------------------------------------------
t0=$SECONDS
if [ "$MODE" = kernel ]; then
	_cfg_write "$TARGET_CFG_ISCSI/$IQN_A/tpgt_1/enable" 1
else
	start_gw a || diag "gateway A's serve did not start again: $(tail -n 3 "$LOG_A" | tr '\n' ' ')"
	wait_for_log "attached uio[0-9]+ ha-a" 120 "$LOG_A" >/dev/null 2>&1 || diag "no 'attached … ha-a' in gateway A's log"
fi
# A's path is back (multipathd's checker reinstates it), yet B's group stays the active one (A is
# non-optimized now): read through the map, then look.
if _wait_until 120 eval '[ "$(path_state "$mm_a")" = A ]' && sleep 5 &&
	timeout 60 dd if="$mpdev" of=/dev/null bs=4k count=1 iflag=direct status=none &&
	[ "$(group_state "$mm_b")" = A ] && [ "$(group_state "$mm_a")" != A ]; then
	pass ha-gateway-a-back-path-reinstated
	diag "path A reinstated $((SECONDS - t0)) s after gateway A came back; $(mpath_paths "$map" | tr '\n' ';')"
else
	fail ha-gateway-a-back-path-reinstated "after $((SECONDS - t0)) s: $(mpath_paths "$map" | tr '\n' ';') (A $mm_a, B $mm_b)"
fi
check_rtpg ha-rtpg-after-restart "0x1=an 0x2=ao" "$disk_a" "$disk_b"

# --- failback by SET TARGET PORT GROUPS on A's path under fio ----------------------------------
STPG_OUT=$VM_SCRATCH/stpg.txt
stpg_a() {
	local rc=0
	if [ "$MODE" = kernel ]; then
		timeout 120 sg_stpg --tp=1,2 --state=ao,an "$disk_a" >"$STPG_OUT" 2>&1 || rc=$?
	else
		timeout 120 sg_stpg --tp=1 --state=ao "$disk_a" >"$STPG_OUT" 2>&1 || rc=$?
	fi
	echo "rc=$rc" >>"$STPG_OUT"
	wa_stpg=$(writes_of "$disk_a")
	diag "sg_stpg on $disk_a at $(date +%T.%3N): rc=$rc"
}
wa_stpg=
fio_during failback stpg_a
wa1=$(writes_of "$disk_a")
if [ "$FIO_OK" = 1 ] && grep -qx 'rc=0' "$STPG_OUT"; then
	pass ha-stpg-failback-fio-verify
	diag "switch to A by STPG: longest pause ${FIO_GAP_MS} ms"
else
	fail ha-stpg-failback-fio-verify "fio failed/verify errors, or sg_stpg: $(tr '\n' ' ' <"$STPG_OUT")"
fi
if _wait_until 30 eval '[ "$(group_state "$mm_a")" = A ]' && [ "$(path_state "$mm_b")" = A ] && [ -n "$wa_stpg" ] && [ $((wa1 - wa_stpg)) -gt 100 ]; then
	pass ha-stpg-io-on-path-a
	diag "after STPG: $(mpath_paths "$map" | tr '\n' ';') A wrote $((wa1 - wa_stpg)) times after the STPG"
else
	fail ha-stpg-io-on-path-a "paths $(mpath_paths "$map" | tr '\n' ';') (A $mm_a, B $mm_b), A's writes after STPG $((wa1 - ${wa_stpg:-0}))"
fi
check_rtpg ha-rtpg-after-stpg "0x1=ao 0x2=an" "$disk_a" "$disk_b"

# --- what went through the map is what the image holds -------------------------------------------
head -c $((4 * MiB)) /dev/urandom >"$VM_SCRATCH/ha-data.bin"
if dd if="$VM_SCRATCH/ha-data.bin" of="$mpdev" bs=1M seek=48 oflag=direct status=none && sync; then
	if [ "$MODE" = kernel ]; then
		img=$VM_SCRATCH/ha0.img
	else
		img=$VM_SCRATCH/ha0.raw
		timeout 120 rbd -c "$conf" export rbd/ha0 "$img" >/dev/null 2>&1 || diag "rbd export failed"
	fi
	if cmp -s "$VM_SCRATCH/ha-data.bin" <(dd if="$img" bs=1M skip=48 count=4 status=none); then
		pass ha-data-reaches-the-image
	else
		fail ha-data-reaches-the-image "the image differs at 48 MiB"
	fi
else
	fail ha-data-reaches-the-image "writing through $mpdev failed"
fi
finish
