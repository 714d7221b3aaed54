# shellcheck shell=bash
# Guest-side helpers for test scripts run by scripts/vm/run-vm.sh. Source it (bash):
#   . scripts/vm/guest/lib.sh
# Do not `set -e` around these helpers casually: a test should report FAIL and go on.
#
# Results:    plan N (the checks this script runs; run-suite.sh fails a script that ran fewer) |
#             pass NAME | fail NAME MSG... | skip NAME MSG... | diag MSG... |
#             check NAME CMD... (pass/fail by CMD's status) | finish (summary + exit status)
# Data:       hex_to_file HEX FILE
# Backstores: create_user_backstore NAME SIZE_BYTES DEV_CONFIG [TOKEN=VALUE...]
#             remove_user_backstore NAME | user_backstore_uio NAME (prints uioN)
#             create_rd_backstore NAME SIZE_BYTES | remove_backstore NAME
# tcm_loop:   export_tcm_loop NAME [LUN] (prints /dev/sdX) | unexport_tcm_loop NAME
#             wait_for_tcm_loop_disk WWN [LUN] [TIMEOUT_S] (prints /dev/sdX) | tcm_loop_wwn NAME
#             teardown_target (removes every tcm_loop target and backstore)
# Appliance:  start_appliance [SERVE_ARGS...] | stop_appliance [TIMEOUT_S] (returns its status)
#             wait_for_log PATTERN [TIMEOUT_S] [FILE]
# tcmu-runner: start_tcmu_runner (sets RUNNER_PID) | stop_tcmu_runner

TARGET_CFG=${TARGET_CFG:-/sys/kernel/config/target}
VM_SCRATCH=${VM_SCRATCH:-/tmp/vm-scratch}
VM_REPO_ROOT=${VM_REPO_ROOT:-$PWD}
USER_HBA=${USER_HBA:-user_1}
mkdir -p "$VM_SCRATCH"

_t_pass=0
_t_fail=0

# --- results -------------------------------------------------------------------------------
pass() { _t_pass=$((_t_pass + 1)); echo "PASS $1"; }
fail() {
	local name=$1
	shift
	_t_fail=$((_t_fail + 1))
	echo "FAIL $name: ${*:-failed}"
}
skip() {
	local name=$1
	shift
	echo "SKIP $name: $*"
}
diag() { echo "# $*"; }
# plan N: declares how many checks (pass, fail or skip) a full run of this script makes.
plan() { echo "PLAN $1"; }

# check NAME CMD [ARGS...]: PASS if CMD succeeds, else FAIL with its last output lines.
check() {
	local name=$1 out st
	shift
	out=$("$@" 2>&1)
	st=$?
	if [ $st = 0 ]; then
		pass "$name"
	else
		fail "$name" "exit $st: $(printf '%s\n' "$out" | tail -n 3 | tr '\n' ' ')"
	fi
	return $st
}

finish() {
	echo "RESULT: $_t_pass passed, $_t_fail failed"
	[ "$_t_fail" = 0 ] && exit 0
	exit 1
}

# --- helpers -------------------------------------------------------------------------------
hex_to_file() { printf "$(printf '%s' "$1" | sed 's/../\\x&/g')" >"$2"; } # HEX FILE

# _wait_until TIMEOUT_S CMD...: poll CMD every 0.1 s until it succeeds.
_wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.1
	done
}

_cfg_write() { # FILE VALUE: write VALUE, reporting the kernel's error with the file name.
	if ! printf '%s\n' "$2" >"$1"; then
		echo "configfs: writing '$2' to $1 failed" >&2
		return 1
	fi
}

# The backstore directory for NAME under any HBA (core/<hba>/<NAME>).
backstore_dir() {
	local d
	for d in "$TARGET_CFG"/core/*/"$1"; do
		[ -d "$d" ] && { echo "$d"; return 0; }
	done
	echo "no backstore named $1" >&2
	return 1
}

# --- backstores ----------------------------------------------------------------------------
# create_user_backstore NAME SIZE_BYTES DEV_CONFIG [TOKEN=VALUE...]
# Extra tokens go to `control` before enable (hw_block_size=, max_data_area_mb=, ...).
create_user_backstore() {
	local name=$1 size=$2 cfg=$3 dir ctl tok
	shift 3
	case $cfg in *,*)
		echo "create_user_backstore: dev_config may not contain ','" >&2
		return 1
		;;
	esac
	dir=$TARGET_CFG/core/$USER_HBA/$name
	mkdir -p "$dir" || return 1
	ctl="dev_config=$cfg,dev_size=$size"
	for tok in "$@"; do ctl="$ctl,$tok"; done
	_cfg_write "$dir/control" "$ctl" || return 1
	_cfg_write "$dir/enable" 1 || return 1
}

# user_backstore_uio NAME [TIMEOUT_S]: prints the uioN whose name is tcm-user/<hba>/NAME/...
user_backstore_uio() {
	local name=$1 hba=${USER_HBA#user_} deadline=$((SECONDS + ${2:-10})) f
	while :; do
		for f in /sys/class/uio/uio*/name; do
			[ -f "$f" ] || continue
			case $(cat "$f") in "tcm-user/$hba/$name/"*)
				f=${f%/name}
				echo "${f##*/}"
				return 0
				;;
			esac
		done
		[ $SECONDS -ge $deadline ] && break
		sleep 0.1
	done
	echo "no uio device for user backstore $name" >&2
	return 1
}

remove_user_backstore() {
	rmdir "$TARGET_CFG/core/$USER_HBA/$1" || return 1
	rmdir "$TARGET_CFG/core/$USER_HBA" 2>/dev/null # the HBA goes once it is empty
	return 0
}

# create_rd_backstore NAME SIZE_BYTES: a kernel ramdisk (rd_mcp) backstore, no handler needed.
create_rd_backstore() {
	local dir=$TARGET_CFG/core/rd_mcp_1/$1
	mkdir -p "$dir" || return 1
	_cfg_write "$dir/control" "rd_pages=$(($2 / 4096))" || return 1
	_cfg_write "$dir/enable" 1
}

remove_backstore() {
	local dir
	dir=$(backstore_dir "$1") || return 1
	rmdir "$dir" || return 1
	rmdir "${dir%/*}" 2>/dev/null
	return 0
}

# --- tcm_loop ------------------------------------------------------------------------------
# tcm_loop_wwn NAME [initiator]: deterministic NAA WWNs for NAME's loopback target (and the
# nexus initiator port with a second argument).
tcm_loop_wwn() {
	local crc
	crc=$(printf '%s' "$1" | cksum | cut -d' ' -f1)
	printf 'naa.5001405%s%08x\n' "$([ -n "${2:-}" ] && echo 1 || echo 0)" "$crc"
}

# wait_for_tcm_loop_disk WWN [LUN] [TIMEOUT_S]: prints /dev/sdX once the disk for LUN of the
# loopback target WWN (tpgt_1) is probed and its node exists. tpgt_1/address holds the SCSI
# host:channel:target of the loopback port.
wait_for_tcm_loop_disk() {
	local wwn=$1 lun=${2:-0} timeout=${3:-30} addr tpg dev b
	tpg=$TARGET_CFG/loopback/$wwn/tpgt_1
	addr=$(cat "$tpg/address" 2>/dev/null) || {
		echo "no tcm_loop target $wwn" >&2
		return 1
	}
	b=/sys/class/scsi_device/$addr:$lun/device/block
	_tcm_disk() {
		local d
		for d in "$b"/*; do
			[ -e "$d" ] || return 1
			dev=/dev/${d##*/}
			[ -b "$dev" ]
			return
		done
		return 1
	}
	if ! _wait_until "$timeout" _tcm_disk; then
		echo "no disk for $wwn LUN $lun (scsi $addr:$lun) after ${timeout}s" >&2
		return 1
	fi
	echo "$dev"
}

# export_tcm_loop NAME [LUN]: exports backstore NAME through a tcm_loop target (tpgt_1, nexus
# first, then the LUN link) and prints the resulting /dev/sdX.
export_tcm_loop() {
	local name=$1 lun=${2:-0} bs wwn tpg
	bs=$(backstore_dir "$name") || return 1
	wwn=$(tcm_loop_wwn "$name")
	tpg=$TARGET_CFG/loopback/$wwn/tpgt_1
	mkdir -p "$tpg" || return 1
	# The nexus (I_T nexus to a loopback initiator port) must exist before a LUN is linked.
	if ! grep -q . "$tpg/nexus" 2>/dev/null; then
		_cfg_write "$tpg/nexus" "$(tcm_loop_wwn "$name" initiator)" || return 1
	fi
	mkdir -p "$tpg/lun/lun_$lun" || return 1
	ln -s "$bs" "$tpg/lun/lun_$lun/$name" || return 1
	wait_for_tcm_loop_disk "$wwn" "$lun"
}

# unexport_tcm_loop NAME: removes the loopback target export_tcm_loop NAME made (all its LUNs).
unexport_tcm_loop() {
	_tcm_loop_remove "$TARGET_CFG/loopback/$(tcm_loop_wwn "$1")"
}

_tcm_loop_remove() { # WWN_DIR
	local w=$1 tpg l st=0
	[ -d "$w" ] || return 0
	for tpg in "$w"/tpgt_*; do
		[ -d "$tpg" ] || continue
		for l in "$tpg"/lun/lun_*; do
			[ -d "$l" ] || continue
			find "$l" -maxdepth 1 -type l -exec rm -f {} + || st=1
			rmdir "$l" || st=1
		done
		grep -q . "$tpg/nexus" 2>/dev/null && { printf 'NULL\n' >"$tpg/nexus" || st=1; }
		rmdir "$tpg" || st=1
	done
	rmdir "$w" || st=1
	return $st
}

# teardown_target: removes every tcm_loop target, then every backstore and HBA (for traps).
teardown_target() {
	local w d
	for w in "$TARGET_CFG"/loopback/naa.* "$TARGET_CFG"/loopback/fc.* "$TARGET_CFG"/loopback/iqn.*; do
		[ -d "$w" ] && _tcm_loop_remove "$w"
	done
	for d in "$TARGET_CFG"/core/*_[0-9]*/*/; do
		[ -d "$d" ] && rmdir "$d"
	done
	for d in "$TARGET_CFG"/core/*_[0-9]*; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	return 0
}

# --- the appliance -------------------------------------------------------------------------
APPLIANCE_BIN=${APPLIANCE_BIN:-$VM_REPO_ROOT/dist/tcmu-appliance}
APPLIANCE_LOG=${APPLIANCE_LOG:-$VM_SCRATCH/appliance.log}
APPLIANCE_PID=

_alive() { # PID: running and not a zombie
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

# start_appliance [ARGS...]: runs `$APPLIANCE_BIN serve ARGS...` in the background (this shell
# must be its parent: do not call it in $(...)), output appended to $APPLIANCE_LOG; sets
# APPLIANCE_PID. Fails (with the log's tail) if it exits within its first half second.
start_appliance() {
	if [ ! -x "$APPLIANCE_BIN" ]; then
		echo "start_appliance: $APPLIANCE_BIN is missing (bun run build?)" >&2
		return 1
	fi
	echo "--- start: serve $* ---" >>"$APPLIANCE_LOG"
	"$APPLIANCE_BIN" serve "$@" >>"$APPLIANCE_LOG" 2>&1 &
	APPLIANCE_PID=$!
	sleep 0.5
	if ! _alive "$APPLIANCE_PID"; then
		local st=0
		wait "$APPLIANCE_PID" || st=$?
		APPLIANCE_PID=
		echo "start_appliance: exited at once with status $st; log tail:" >&2
		tail -n 20 "$APPLIANCE_LOG" >&2
		return 1
	fi
}

# stop_appliance [TIMEOUT_S]: SIGTERM, wait up to TIMEOUT_S (default 30; SIGKILL after that),
# and return the appliance's exit status (128+signal if a signal ended it). Use as
# `stop_appliance || st=$?` under set -e.
stop_appliance() {
	local pid=$APPLIANCE_PID timeout=${1:-30} st=0
	[ -n "$pid" ] || { echo "stop_appliance: not running" >&2; return 0; }
	kill -TERM "$pid" 2>/dev/null
	if ! _wait_until "$timeout" eval '! _alive '"$pid"; then
		echo "stop_appliance: still running ${timeout}s after SIGTERM; SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" || st=$?
	APPLIANCE_PID=
	return $st
}

# wait_for_log PATTERN [TIMEOUT_S] [FILE]: waits until FILE (default $APPLIANCE_LOG) has a line
# matching the extended regex PATTERN.
wait_for_log() {
	local pat=$1 timeout=${2:-30} file=${3:-$APPLIANCE_LOG}
	_wait_until "$timeout" grep -qE -- "$pat" "$file" 2>/dev/null && return 0
	echo "wait_for_log: no /$pat/ in $file after ${timeout}s" >&2
	return 1
}

# --- tcmu-runner: the peer some scripts compare with, or run beside ---------------------------
RUNNER_PID=
# start_tcmu_runner: Debian's tcmu-runner in the background (logs in $VM_SCRATCH/runner-log,
# output in $VM_SCRATCH/runner.out); sets RUNNER_PID. Fails, with the output's tail on stderr,
# if it exits within 2 s. Call it from the script's own shell, not in $(...).
start_tcmu_runner() {
	mkdir -p "$VM_SCRATCH/runner-log"
	tcmu-runner --handler-path /usr/lib/x86_64-linux-gnu/tcmu-runner -l "$VM_SCRATCH/runner-log" >"$VM_SCRATCH/runner.out" 2>&1 &
	RUNNER_PID=$!
	sleep 2
	_alive "$RUNNER_PID" && return 0
	echo "tcmu-runner exited: $(tail -n 3 "$VM_SCRATCH/runner.out" | tr '\n' ' ')" >&2
	RUNNER_PID=
	return 1
}

# stop_tcmu_runner: SIGTERM, SIGKILL after 30 s.
stop_tcmu_runner() {
	[ -n "$RUNNER_PID" ] || return 0
	kill -TERM "$RUNNER_PID" 2>/dev/null
	_wait_until 30 eval '! _alive '"$RUNNER_PID" || kill -KILL "$RUNNER_PID" 2>/dev/null
	wait "$RUNNER_PID" 2>/dev/null
	RUNNER_PID=
}

# --- multipath / HA helpers (scripts/vm/guest/ha.sh) -----------------------------------------
# writable_etc: an overlay (tmpfs upper) over the read-only /etc, so multipath.conf, /etc/multipath
#               and /etc/iscsi can be written. Idempotent.
# start_iscsid [REPLACEMENT_TIMEOUT_S]: open-iscsi's iscsid with a writable config (needs
#               writable_etc first); node.session.timeo.replacement_timeout as given (default 5).
# stop_iscsid | iscsi_login IQN PORTAL | iscsi_logout_all
# iscsi_session_disk IQN PORTAL: prints /dev/sdX of that session's LUN 0 (waits up to 30 s).
# lio_iscsi_export IQN PORTAL BACKSTORE_DIR [TG_PT_GP]: a kernel iSCSI target (tpgt_1, open to
#               every initiator, no CHAP) exporting BACKSTORE_DIR as LUN 0, the LUN in TG_PT_GP.
# lio_iscsi_remove IQN
# alua_group_add BACKSTORE_DIR NAME ID STATE: an ALUA target port group on a device
#               (alua_access_type 3: implicit and explicit; STATE 0 active/optimized,
#               1 active/non-optimized, 2 standby, 3 unavailable, 14 offline, 15 transitioning).
# write_multipath_conf [EXTRA_OVERRIDES]: /etc/multipath.conf for ALUA gateways, no udev needed.
# mpath_map: prints the name of the (first) multipath map | mpath_dev: its /dev/dm-N
TARGET_CFG_ISCSI=$TARGET_CFG/iscsi
writable_etc() {
	grep -q ' /etc overlay ' /proc/mounts && return 0
	mkdir -p /run/etc-overlay/upper /run/etc-overlay/work || return 1
	mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/etc-overlay/upper,workdir=/run/etc-overlay/work /etc
}

start_iscsid() {
	local rt=${1:-5} c=/etc/iscsi/iscsid.conf
	[ -w /etc/iscsi ] || { echo "start_iscsid: /etc/iscsi is not writable (writable_etc?)" >&2; return 1; }
	sed -i -e 's/^iscsid.startup = .*/iscsid.startup = \/bin\/true/' \
		-e 's/^node.session.initial_login_retry_max = .*/node.session.initial_login_retry_max = 0/' \
		-e "s/^node.session.timeo.replacement_timeout = .*/node.session.timeo.replacement_timeout = $rt/" "$c" || return 1
	grep -q "^node.session.timeo.replacement_timeout = $rt\$" "$c" ||
		echo "node.session.timeo.replacement_timeout = $rt" >>"$c"
	mkdir -p /run/lock/iscsi
	iscsid || return 1
	_wait_until 10 test -f /run/iscsid.pid
}
stop_iscsid() { [ -f /run/iscsid.pid ] && kill "$(cat /run/iscsid.pid)" 2>/dev/null; return 0; }

iscsi_login() { # IQN PORTAL: discovery-less node record, then login (bounded)
	timeout 60 iscsiadm -m node -o new -T "$1" -p "$2" >/dev/null || return 1
	timeout 60 iscsiadm -m node -T "$1" -p "$2" --login >/dev/null
}
iscsi_logout_all() { timeout 60 iscsiadm -m node --logoutall=all >/dev/null 2>&1; return 0; }

iscsi_session_disk() { # IQN PORTAL
	local iqn=$1 portal=$2 d=
	_isd() {
		d=$(iscsiadm -m session -P 3 2>/dev/null | awk -v t="$iqn" -v p="${portal%:*}:${portal#*:}" '
			/^Target: / { it = ($2 == t) } /Current Portal: / { ip = index($3, p) == 1 }
			it && ip && /Attached scsi disk/ { print $4; exit }')
		[ -n "$d" ] && [ -b "/dev/$d" ]
	}
	_wait_until 30 _isd || { echo "no disk for $iqn at $portal" >&2; return 1; }
	echo "/dev/$d"
}

lio_iscsi_export() { # IQN PORTAL BACKSTORE_DIR [TG_PT_GP]
	local iqn=$1 portal=$2 bs=$3 gp=${4:-} tpg=$TARGET_CFG_ISCSI/$1/tpgt_1 a
	mkdir -p "$tpg/lun/lun_0" || return 1
	for a in generate_node_acls=1 demo_mode_write_protect=0 authentication=0 cache_dynamic_acls=1; do
		_cfg_write "$tpg/attrib/${a%=*}" "${a#*=}" || return 1
	done
	ln -s "$bs" "$tpg/lun/lun_0/${bs##*/}" || return 1
	[ -z "$gp" ] || _cfg_write "$tpg/lun/lun_0/alua_tg_pt_gp" "$gp" || return 1
	mkdir "$tpg/np/$portal" || return 1
	_cfg_write "$tpg/enable" 1
}
lio_iscsi_remove() { # IQN
	local w=$TARGET_CFG_ISCSI/$1 tpg l
	[ -d "$w" ] || return 0
	for tpg in "$w"/tpgt_*; do
		[ -d "$tpg" ] || continue
		echo 0 >"$tpg/enable" 2>/dev/null
		for l in "$tpg"/np/*; do [ -d "$l" ] && rmdir "$l"; done
		for l in "$tpg"/lun/lun_*; do
			[ -d "$l" ] || continue
			find "$l" -maxdepth 1 -type l -exec rm -f {} +
			rmdir "$l"
		done
		rmdir "$tpg"
	done
	rmdir "$w"
}

alua_group_add() { # BACKSTORE_DIR NAME ID STATE
	local g=$1/alua/$2
	mkdir -p "$g" || return 1
	_cfg_write "$g/tg_pt_gp_id" "$3" || return 1
	_cfg_write "$g/alua_access_type" 3 || return 1
	_cfg_write "$g/alua_access_state" "$4"
}

# The settings Ceph documents for its iSCSI gateways' Linux initiators, in `overrides` so they
# apply to any vendor string. path_grouping_policy failover (one path per group, ordered by ALUA
# priority) rather than group_by_prio: a failed path keeps its last priority, so group_by_prio
# can put a dead active/optimized path into the survivor's group; when it comes back it is then
# in the current group, dm-multipath activates it, and scsi_dh_alua's activation sends SET TARGET
# PORT GROUPS for a non-optimized group: the initiator itself would fail back at once.
# uid_attribute "": no udev in the VM, multipath reads the WWID from sysfs (VPD 0x83) itself.
write_multipath_conf() {
	mkdir -p /etc/multipath || return 1
	cat >/etc/multipath.conf <<-CONF
		defaults {
			user_friendly_names no
			find_multipaths greedy
			uid_attribute ""
			polling_interval 2
			max_polling_interval 4
			checker_timeout 15
			verbosity 2
		}
		blacklist {
			devnode "^(ram|loop|fd|md|dm-|sr|scd|st|vd|nbd|rbd)[0-9]*"
		}
		overrides {
			hardware_handler "1 alua"
			path_grouping_policy failover
			path_selector "queue-length 0"
			prio alua
			path_checker tur
			failback immediate
			no_path_retry 30
			fast_io_fail_tmo 5
			dev_loss_tmo 600
			${1:-}
		}
	CONF
}
mpath_map() { dmsetup ls --target multipath 2>/dev/null | awk '$1 != "No" { print $1; exit }'; }
mpath_dev() {
	local m mm
	m=$(mpath_map) && [ -n "$m" ] || return 1
	mm=$(dmsetup info -c --noheadings -o major,minor "$m" | tr -d ' ') || return 1
	echo "/dev/dm-${mm#*:}"
}
# udev_mark_initialized /dev/sdX...: no udevd runs in the VM, and multipath only looks at block
# devices udev has initialized (a database entry under /run/udev/data): write a minimal one.
udev_mark_initialized() {
	local d mm
	mkdir -p /run/udev/data || return 1
	for d in "$@"; do
		mm=$(cat "/sys/class/block/${d#/dev/}/dev") || return 1
		printf 'I:%s\n' "$(($(date +%s) * 1000000))" >"/run/udev/data/b$mm"
	done
}
# mpath_paths MAP: one line per path of MAP: "GROUP GROUP_STATE MAJ:MIN PATH_STATE" from
# `dmsetup status` (group state A active, E enabled, D disabled; path state A active, F failed).
mpath_paths() {
	dmsetup status "$1" 2>/dev/null | awk '$3 == "multipath" {
		i = 4; i += $i + 1; i += $i + 1  # features, hardware handler args
		ngroups = $i; i += 2             # groups, next group
		for (g = 1; g <= ngroups; g++) {
			st = $i; i++; i += $i + 1; npaths = $i; nsel = $(i + 1); i += 2
			for (p = 1; p <= npaths; p++) { print g, st, $i, $(i + 1); i += 3 + nsel }
		}
	}'
}
# majmin /dev/sdX: prints MAJ:MIN
majmin() { cat "/sys/class/block/${1#/dev/}/dev"; }
