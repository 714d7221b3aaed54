#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for tests: one mon, one OSD on memstore (in RAM) and
# the pool "rbd", on 127.0.0.1 only. Everything it makes (config, keyrings, mon store, logs,
# admin sockets, pid files) lies under DIR; it needs no /etc/ceph, /var/lib/ceph or systemd, and
# two clusters in different DIRs run side by side (own fsid, own mon ports).
#
# Usage: scripts/ceph/test-cluster.sh start DIR [--lifetime SECONDS]
#          builds and starts the cluster, waits (at most 120 s) until the OSD is up and in and the
#          pool's PGs are active+clean, then prints DIR/ceph.conf: the only line on stdout. A
#          watchdog (its own session) runs "stop DIR" after SECONDS (default 1800) even if the
#          caller dies. On failure: the last log lines on stderr, the cluster stopped, exit 1.
#        scripts/ceph/test-cluster.sh stop DIR
#          kills the daemons and the watchdog, waits for them, removes DIR. Idempotent; refuses
#          a DIR that this script did not make.
# Clients: rbd -c DIR/ceph.conf ls; librbd: rados_create(id "admin") + rados_conf_read_file
#          (DIR/ceph.conf): the admin keyring (DIR/keyring) is named in the config.
# Needs:   ceph-mon ceph-osd ceph-common (Debian 12: 16.2.15), uuid-runtime (uuidgen).
# No mgr: librbd I/O and rbd create/info/resize/snap/du/diff/import/export/clone/trash/bench need
# none, but the mgr's own commands hang (rbd perf, rbd trash purge schedule, rbd mirror snapshot
# schedule) or show nothing (PG and usage figures in ceph -s, ceph df, rados df, ceph pg ...).
# memstore keeps the data in the OSD's memory: its RSS grows by about twice the data stored. Its
# 1 GiB is the size it reports (nearfull HEALTH_WARN past 85 %), not a hard cap on that memory.
# Clones need the parent snapshot protected (the cluster allows clone v1 only, as Ceph's default).
set -euo pipefail

SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")
MARKER=.ceph-test-cluster # in DIR: this script made DIR, so "stop" may remove it
WAIT_S=120                # bound on each wait in "start"
MEMSTORE_BYTES=$((1024 * 1024 * 1024))
PG_NUM=8

ct_log() { printf 'ceph-test: %s\n' "$*" >&2; }
ct_die() { printf 'ceph-test: error: %s\n' "$*" >&2; exit 1; }
ct_now() { date +%s.%N; }
ct_elapsed() { awk -v a="$1" -v b="$(ct_now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
	echo "usage: $0 start DIR [--lifetime SECONDS] | stop DIR" >&2
	exit 2
}

# The ceph CLI against this cluster, bounded: a dead mon must fail a wait, not hang it.
cephc() { timeout 30 ceph -c "$DIR/ceph.conf" --connect-timeout 15 "$@"; }

# True if something listens on 127.0.0.1:$1 (ss when there, else a connect through bash).
port_busy() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# A random free high port, below Linux's ephemeral range (32768+) and above the OSDs' 6800-7300.
# Free now is no promise: the mon's bind is the real test, and "start" retries on a clash.
free_port() {
	local port
	for _ in $(seq 50); do
		port=$((10000 + RANDOM % 22000))
		port_busy "$port" || { echo "$port"; return; }
	done
	ct_die "no free port found on 127.0.0.1"
}

# Prints the pids of DIR's daemons: from their pid files, and (for a start killed before a pid
# file was written) any ceph-mon/ceph-osd whose command line names DIR/ceph.conf.
cluster_pids() {
	local f pid comm
	for f in "$DIR"/run/mon.*.pid "$DIR"/run/osd.*.pid; do
		[ -f "$f" ] && pid=$(cat "$f" 2>/dev/null) && [ -n "$pid" ] && echo "$pid"
	done
	for f in /proc/[0-9]*/comm; do
		read -r comm 2>/dev/null <"$f" || continue
		case $comm in ceph-mon | ceph-osd) ;; *) continue ;; esac
		pid=${f#/proc/}
		pid=${pid%/comm}
		tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$DIR/ceph.conf" && echo "$pid"
	done
	return 0
}

# --- stop ---------------------------------------------------------------------------------
# True while process $1 runs. A zombie counts as gone: the daemons daemonized, so their parent
# is PID 1, which may take its time to reap them (a second, in some containers).
running() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

cmd_stop() {
	local pids pid
	if [ ! -e "$DIR" ]; then
		# Already stopped; but a DIR removed by hand may have left its daemons behind.
		for pid in $(cluster_pids); do kill -KILL "$pid" 2>/dev/null || true; done
		return 0
	fi
	[ -f "$DIR/$MARKER" ] || ct_die "$DIR was not made by $(basename "$0"); not removing it"
	# The watchdog is a session leader (setsid): its group holds it and its sleep. When the
	# watchdog itself runs this stop (it execs it), it is $$ and is spared.
	local wpid
	wpid=$(cat "$DIR/run/watchdog.pid" 2>/dev/null || true)
	[ "$wpid" != $$ ] || wpid=
	[ -z "$wpid" ] || kill -TERM -- "-$wpid" 2>/dev/null || true
	# The store is thrown away, so no clean shutdown: SIGKILL (a memstore OSD would otherwise
	# spend its shutdown writing every object into DIR).
	pids=$(cluster_pids | sort -u)
	for pid in $pids; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	for _ in $(seq 100); do
		local alive=0
		for pid in $pids $wpid; do
			running "$pid" && alive=1
		done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	rm -rf "$DIR"
}

# --- start --------------------------------------------------------------------------------
# Writes DIR/ceph.conf for mon ports $1 (msgr2) and $2 (legacy v1).
write_conf() {
	cat >"$DIR/ceph.conf.tmp" <<EOF
# Throwaway test cluster made by scripts/ceph/test-cluster.sh; "stop $DIR" removes it.
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$1,v1:127.0.0.1:$2]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
# A lost cluster should fail a client in seconds, not in librados' default 300.
client mount timeout = 30
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false

[mon]
mon data = $DIR/\$name
keyring = $DIR/\$name/keyring
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
# A fuller /tmp must neither warn (default: under 30 % free, HEALTH_WARN MON_DISK_LOW) nor make
# the mon shut itself down (default: under 5 % free).
mon data avail warn = 1
mon data avail crit = 0
# Commit map changes (osd new, boot, crush moves, pool create) in 0.1 s batches, not 1 s ones.
paxos propose interval = 0.1
# A mon port taken meanwhile: fail at once (start picks new ports), not after 3 tries 5 s apart.
ms bind retry count = 1
# There is no mgr, on purpose: do not turn HEALTH_OK into "no active mgr" after 120 s.
mon mgr mkfs grace = 86400

[osd]
osd data = $DIR/\$name
osd journal = $DIR/\$name/journal
keyring = $DIR/\$name/keyring
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
# The OSD's CRUSH host is named here rather than taken from the hostname, which may be unset
# (a VM's "(none)") and is then refused as a bucket name (update_crush_location: EINVAL).
crush location = root=default host=ceph-test
# A killed client's watch expires after 10 s instead of 30: librbd takes a dead owner's exclusive
# lock only then (the HA failover tests wait for it). Clients ping their watches every 5 s.
osd client watch timeout = 10
EOF
	mv "$DIR/ceph.conf.tmp" "$DIR/ceph.conf"
}

# On a failed start: the last log lines on stderr, then everything stopped and removed.
on_start_exit() {
	local rc=$?
	[ $rc = 0 ] && return
	local f
	for f in "$DIR"/log/*.log; do
		[ -s "$f" ] || continue
		echo "---- $(basename "$f") (last 20 lines)" >&2
		tail -n 20 "$f" >&2
	done
	ct_log "start failed; stopping $DIR"
	cmd_stop || true
	exit $rc
}

# Polls "$@" every half second until it succeeds, for at most WAIT_S seconds.
wait_for() {
	local what=$1
	shift
	local deadline=$((SECONDS + WAIT_S))
	until "$@"; do
		[ $SECONDS -lt $deadline ] || ct_die "timed out after ${WAIT_S} s waiting for $what"
		sleep 0.5
	done
}

mon_up() { cephc mon stat >/dev/null 2>&1; }

osd_up_in() {
	local stat
	stat=$(cephc osd stat -f json 2>/dev/null) || return 1
	case $stat in *'"num_up_osds":1,'*'"num_in_osds":1,'*) return 0 ;; esac
	return 1
}

# The PGs' states come from the OSD's admin socket: without a mgr, "ceph -s" and "ceph pg ls"
# know no PG states (the PG map lives in the mgr), while the OSD knows its own. All of the pool's
# PG_NUM PGs must be in the peering state machine's Active/Clean, which is "active+clean".
pgs_clean() {
	local history
	history=$(timeout 10 ceph --admin-daemon "$DIR/run/osd.0.asok" dump_pgstate_history 2>/dev/null) ||
		return 1
	awk -F'"' -v pool="$POOL_ID" -v want="$PG_NUM" '
		/"pg":/ { pg = $4 }
		/"currently":/ && index(pg, pool ".") == 1 { n++; if ($4 ~ /\/Active\/Clean$/) clean++ }
		END { exit !(n == want && clean == want) }' <<<"$history"
}

cmd_start() {
	local lifetime=$1 t0
	t0=$(ct_now)
	local tool
	for tool in ceph-mon ceph-osd ceph rbd monmaptool ceph-authtool uuidgen setsid; do
		command -v "$tool" >/dev/null ||
			ct_die "missing $tool (apt-get install ceph-mon ceph-osd ceph-common uuid-runtime)"
	done
	if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
		ct_die "$DIR exists and is not empty"
	fi
	mkdir -p "$DIR"
	: >"$DIR/$MARKER"
	mkdir -p "$DIR/run" "$DIR/log" "$DIR/crash"
	trap on_start_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP

	# The watchdog first, so that even a start killed halfway is cleaned up. setsid: its own
	# session, away from the caller's signals; no inherited stdio, so a caller that reads our
	# stdout to its end is not kept waiting for it.
	# shellcheck disable=SC2016 # $$ and $1.. are the watchdog's own
	setsid bash -c 'echo $$ >"$1/run/watchdog.pid"; sleep "$3" & wait; exec bash "$2" stop "$1"' \
		watchdog "$DIR" "$SCRIPT" "$lifetime" </dev/null >>"$DIR/log/watchdog.log" 2>&1 &
	for _ in $(seq 50); do
		[ -s "$DIR/run/watchdog.pid" ] && break
		sleep 0.1
	done

	FSID=$(uuidgen)
	ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
	ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/keyring" >/dev/null

	# --- mon: random ports, retried if the bind loses a race ------------------------------
	local attempt port2 port1 started=0
	for attempt in 1 2 3 4 5; do
		port2=$(free_port)
		port1=$(free_port)
		[ "$port1" != "$port2" ] || continue
		write_conf "$port2" "$port1"
		rm -rf "$DIR/mon.a" "$DIR/monmap"
		monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$port2,v1:127.0.0.1:$port1]" \
			"$DIR/monmap" >/dev/null
		ceph-mon -c "$DIR/ceph.conf" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
			</dev/null >>"$DIR/log/mon-mkfs.log" 2>&1
		# Without -f ceph-mon daemonizes once it has bound its ports; a failed bind is its exit
		# status.
		if ceph-mon -c "$DIR/ceph.conf" -i a </dev/null >>"$DIR/log/mon-start.log" 2>&1; then
			started=1
			break
		fi
		ct_log "mon did not start on ports $port2/$port1 (attempt $attempt); retrying"
		local pid
		for pid in $(cluster_pids); do kill -KILL "$pid" 2>/dev/null || true; done
		rm -f "$DIR/run/mon.a.pid"
	done
	[ $started = 1 ] || ct_die "mon did not start"
	rm -f "$DIR/mon.keyring"
	wait_for "the mon" mon_up
	ct_log "mon.a up on 127.0.0.1:$port2 (v2), :$port1 (v1) ($(ct_elapsed "$t0") s)"

	# --- osd ------------------------------------------------------------------------------
	local osd_uuid osd_key osd_id
	osd_uuid=$(uuidgen)
	osd_key=$(ceph-authtool --gen-print-key)
	mkdir -p "$DIR/osd.0"
	printf '{"cephx_secret": "%s"}\n' "$osd_key" >"$DIR/osd.0/new.json"
	osd_id=$(cephc osd new "$osd_uuid" -i "$DIR/osd.0/new.json")
	rm -f "$DIR/osd.0/new.json"
	[ "$osd_id" = 0 ] || ct_die "ceph osd new gave id '$osd_id', expected 0"
	ceph-authtool --create-keyring "$DIR/osd.0/keyring" -n osd.0 --add-key "$osd_key" >/dev/null
	ceph-osd -c "$DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
		</dev/null >>"$DIR/log/osd-mkfs.log" 2>&1
	ceph-osd -c "$DIR/ceph.conf" -i 0 </dev/null >>"$DIR/log/osd-start.log" 2>&1
	wait_for "osd.0 up and in" osd_up_in
	ct_log "osd.0 up and in ($(ct_elapsed "$t0") s)"

	# --- pool -----------------------------------------------------------------------------
	local out
	out=$(cephc osd pool create rbd "$PG_NUM" "$PG_NUM" 2>&1) || ct_die "ceph osd pool create: $out"
	POOL_ID=$(cephc osd lspools | awk '$2 == "rbd" { print $1 }')
	[ -n "$POOL_ID" ] || ct_die "pool rbd was not created"
	timeout "$WAIT_S" rbd -c "$DIR/ceph.conf" pool init rbd
	ct_log "pool rbd created ($(ct_elapsed "$t0") s)"
	wait_for "the pool's PGs active+clean" pgs_clean

	trap - EXIT
	ct_log "cluster $FSID ready in $(ct_elapsed "$t0") s"
	echo "$DIR/ceph.conf"
}

# --- main ---------------------------------------------------------------------------------
[ $# -ge 2 ] || usage
cmd=$1
DIR=$(realpath -m "$2")
shift 2
[ "$DIR" != / ] || ct_die "DIR must not be /"
case $cmd in
start)
	lifetime=1800
	while [ $# -gt 0 ]; do
		case $1 in
		--lifetime)
			[ $# -ge 2 ] || usage
			lifetime=$2
			shift 2
			;;
		*) usage ;;
		esac
	done
	case $lifetime in '' | *[!0-9]*) ct_die "--lifetime wants whole seconds, not '$lifetime'" ;; esac
	cmd_start "$lifetime"
	;;
stop)
	[ $# = 0 ] || usage
	cmd_stop
	;;
*) usage ;;
esac
