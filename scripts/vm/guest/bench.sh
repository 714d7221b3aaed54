#!/usr/bin/env bash
# Side-by-side fio benchmark through tcm_loop, one target after another in this one VM:
#   rd      kernel ramdisk (rd_mcp)
#   fileio  kernel target_core_file over an image file (buffered, write cache on)
#   runner  tcmu-runner's qcow handler over a raw image file (Debian package)
#   ram     our RAM backstore
#   file    our file backstore over an image file
# Images live on one ext4 file system (a loop device over a /dev/shm file), so the file targets
# share a file system and its page cache. Every device gets write-back caching (WCE=1: no
# device flushes; fio --direct=1 never asks for one) and user backstores hw_max_sectors=2048
# (1 MiB commands, like the kernel backstores) and a 64 MiB data area.
#
# Results go to $VM_OUT (results.tsv, rss.tsv, appliance.log, profile-*.txt); the host side
# (scripts/bench-vm.sh) prints the table. Env: BENCH_RUNTIME_S (per job, default 12),
# BENCH_TARGETS (default "rd fileio runner ram file"), BENCH_JOBS (job names, default all),
# BENCH_PROFILE=1 (perf profiles of our process at the end).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNTIME_S=${BENCH_RUNTIME_S:-12}
TARGETS=${BENCH_TARGETS:-rd fileio runner ram file}
OUT=${VM_OUT:-$VM_SCRATCH/out}
REGION=256M
SIZE=$((256 * 1024 * 1024))
FS_IMAGE=/dev/shm/bench-fs.img
FS_BYTES=$((1024 * 1024 * 1024))
IMAGES=$VM_SCRATCH/images
USER_TOKENS=(hw_max_sectors=2048 max_data_area_mb=64)
RUNNER_PID=
RUNNER_ANON=
LOOP_DEV=
RSS_PID=
mkdir -p "$OUT" "$IMAGES"
ip link set lo up 2>/dev/null # the metrics scrape at the end
: >"$OUT/results.tsv"
: >"$OUT/rss.tsv"

# name rw bs iodepth
JOBS=(
	"randread-4k-qd1 randread 4k 1"
	"randread-4k-qd32 randread 4k 32"
	"randwrite-4k-qd1 randwrite 4k 1"
	"randwrite-4k-qd32 randwrite 4k 32"
	"read-1m-qd8 read 1m 8"
	"write-1m-qd8 write 1m 8"
)

cleanup() {
	[ -n "$RSS_PID" ] && kill "$RSS_PID" 2>/dev/null
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	[ -n "$RUNNER_PID" ] && kill -KILL "$RUNNER_PID" 2>/dev/null
	teardown_target
	mountpoint -q "$IMAGES" && umount "$IMAGES"
	[ -n "$LOOP_DEV" ] && losetup -d "$LOOP_DEV" 2>/dev/null
	[ -f "$APPLIANCE_LOG" ] && cp "$APPLIANCE_LOG" "$OUT/appliance.log"
	return 0
}
trap cleanup EXIT

# --- helpers -----------------------------------------------------------------------------------
# fio_job TARGET DEV NAME RW BS QD: one timed job; appends TARGET NAME IOPS BW_BYTES P50_US P99_US.
fio_job() {
	local target=$1 dev=$2 name=$3 rw=$4 bs=$5 qd=$6 json dir
	json=$OUT/fio-$target-$name.json
	fio --name="$name" --filename="$dev" --direct=1 --ioengine=libaio --iodepth="$qd" --rw="$rw" --bs="$bs" \
		--size=$REGION --runtime="$RUNTIME_S" --time_based --ramp_time=1 --randrepeat=0 --norandommap \
		--output-format=json >"$json" 2>"$json.err"
	case $rw in *read) dir=read ;; *) dir=write ;; esac
	if ! jq -e ".jobs[0].$dir.iops" "$json" >/dev/null 2>&1; then
		fail "$target-$name" "fio failed: $(tail -n 3 "$json.err" | tr '\n' ' ')"
		return 1
	fi
	jq -r --arg t "$target" --arg n "$name" \
		".jobs[0].$dir | [\$t, \$n, (.iops|floor), .bw_bytes, (.clat_ns.percentile[\"50.000000\"]/1000|floor), (.clat_ns.percentile[\"99.000000\"]/1000|floor)] | @tsv" \
		"$json" >>"$OUT/results.tsv"
	pass "$target-$name: $(tail -n 1 "$OUT/results.tsv" | cut -f3) IOPS"
}

# bench_device TARGET DEV: fills the region (so reads move data), then runs every job.
bench_device() {
	local target=$1 dev=$2 job name
	fio --name=fill --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=write --bs=1m --size=$REGION \
		--output-format=terse >/dev/null 2>&1 || diag "$target: prefill failed"
	for job in "${JOBS[@]}"; do
		# shellcheck disable=SC2086
		set -- $job
		name=$1
		if [ -n "${BENCH_JOBS:-}" ] && ! grep -qw -- "$name" <<<"$BENCH_JOBS"; then continue; fi
		fio_job "$target" "$dev" "$@"
	done
}

# create_user_device NAME DEV_CONFIG: a user backstore with write-back caching and the tokens above.
create_user_device() {
	local dir=$TARGET_CFG/core/$USER_HBA/$1 ctl tok
	mkdir -p "$dir" || return 1
	ctl="dev_config=$2,dev_size=$SIZE"
	for tok in "${USER_TOKENS[@]}"; do ctl="$ctl,$tok"; done
	_cfg_write "$dir/control" "$ctl" || return 1
	_cfg_write "$dir/attrib/emulate_write_cache" 1 || return 1
	_cfg_write "$dir/enable" 1
}

# with_export NAME TARGET: exports backstore NAME, benchmarks it as TARGET, removes the export.
with_export() {
	local dev
	if ! dev=$(export_tcm_loop "$1"); then
		fail "$2-export" "no tcm_loop disk for $1"
		return 1
	fi
	diag "$2: $dev ($(cat "/sys/block/${dev#/dev/}/queue/max_sectors_kb") KiB max I/O)"
	bench_device "$2" "$dev"
	unexport_tcm_loop "$1"
}

# bench_four TARGET NAME...: exports the four backstores NAME..., fills each, then runs one fio
# job per device at once (4k randread QD32) and appends their aggregate as randread-4k-qd32-x4.
# (--output: with several jobs fio prints their descriptions on stdout ahead of the JSON.)
AGGREGATE_JOB=randread-4k-qd32-x4
AGGREGATE_SIZE=$((64 * 1024 * 1024))
bench_four() {
	local target=$1 name dev json=$OUT/fio-$1-$AGGREGATE_JOB.json args=()
	shift
	if [ -n "${BENCH_JOBS:-}" ] && ! grep -qw -- "$AGGREGATE_JOB" <<<"$BENCH_JOBS"; then return 0; fi
	for name in "$@"; do
		dev=$(export_tcm_loop "$name") || { fail "$target-x4-export" "no tcm_loop disk for $name"; return 1; }
		fio --name=fill --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=write --bs=1m \
			--size=$AGGREGATE_SIZE --output-format=terse >/dev/null 2>&1 || diag "$target: prefill of $name failed"
		args+=(--name="$name" --filename="$dev")
	done
	fio --direct=1 --ioengine=libaio --iodepth=32 --rw=randread --bs=4k --size=$AGGREGATE_SIZE --runtime="$RUNTIME_S" \
		--time_based --ramp_time=1 --randrepeat=0 --norandommap --group_reporting "${args[@]}" \
		--output-format=json --output="$json" --eta=never 2>"$json.err"
	if jq -e '.jobs[0].read.iops' "$json" >/dev/null 2>&1; then
		jq -r --arg t "$target" --arg n "$AGGREGATE_JOB" \
			'.jobs[0].read | [$t, $n, (.iops|floor), .bw_bytes, (.clat_ns.percentile["50.000000"]/1000|floor), (.clat_ns.percentile["99.000000"]/1000|floor)] | @tsv' \
			"$json" >>"$OUT/results.tsv"
		pass "$target-$AGGREGATE_JOB: $(tail -n 1 "$OUT/results.tsv" | cut -f3) IOPS over $# devices"
	else
		fail "$target-$AGGREGATE_JOB" "fio failed: $(tail -n 3 "$json.err" | tr '\n' ' ')"
	fi
	for name in "$@"; do unexport_tcm_loop "$name"; done
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# rss_parts PID: "anon file shmem" KiB (RssFile is mostly the executable's own pages).
rss_parts() { awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } /^RssShmem:/ { s = $2 } END { print a, f, s }' "/proc/$1/status" 2>/dev/null; }

# record_rss KEY WHAT: our RSS now, read once, into rss.tsv as KEY and into the log with its
# anon/file/shmem split and thread count (the table and the log then show the same sample).
record_rss() {
	local rss parts
	rss=$(rss_kib "$APPLIANCE_PID")
	parts=$(rss_parts "$APPLIANCE_PID")
	echo -e "ours\t$1\t$rss" >>"$OUT/rss.tsv"
	diag "RSS $2: $rss KiB (anon file shmem: $parts), $(ls /proc/"$APPLIANCE_PID"/task | wc -l) threads:" \
		"$(for task in /proc/"$APPLIANCE_PID"/task/*; do printf '%s(%s) ' "$(cat "$task/comm")" "$(cat "$task/wchan")"; done 2>/dev/null)"
}

# sample_rss PID FILE: writes the largest VmRSS seen to FILE until killed.
sample_rss() {
	local max=0 now
	while :; do
		now=$(rss_kib "$1") || break
		[ -n "$now" ] && [ "$now" -gt "$max" ] && max=$now && echo "$max" >"$2"
		sleep 0.5
	done
}

# --- the shared file system --------------------------------------------------------------------
truncate -s $FS_BYTES "$FS_IMAGE"
LOOP_DEV=$(losetup -f --show "$FS_IMAGE") || { fail fs "no loop device"; finish; }
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP_DEV" && mount "$LOOP_DEV" "$IMAGES" || { fail fs "no ext4 on $LOOP_DEV"; finish; }
diag "kernel $(uname -r), $(nproc) cpus, images on ext4 over $LOOP_DEV, ${RUNTIME_S}s per job, region $REGION"

# --- kernel backstores ---------------------------------------------------------------------------
if grep -qw rd <<<"$TARGETS"; then
	create_rd_backstore bench_rd $SIZE && with_export bench_rd rd
	remove_backstore bench_rd
	for i in 0 1 2 3; do create_rd_backstore "bench_rd$i" $AGGREGATE_SIZE; done
	bench_four rd bench_rd0 bench_rd1 bench_rd2 bench_rd3
	for i in 0 1 2 3; do remove_backstore "bench_rd$i"; done
fi

if grep -qw fileio <<<"$TARGETS"; then
	dir=$TARGET_CFG/core/fileio_1/bench_fileio
	mkdir -p "$dir" && _cfg_write "$dir/control" "fd_dev_name=$IMAGES/fileio.img,fd_dev_size=$SIZE,fd_buffered_io=1" &&
		_cfg_write "$dir/enable" 1 && with_export bench_fileio fileio
	remove_backstore bench_fileio
	rm -f "$IMAGES/fileio.img"
fi

# --- tcmu-runner ---------------------------------------------------------------------------------
if grep -qw runner <<<"$TARGETS"; then
	if command -v tcmu-runner >/dev/null; then
		truncate -s $SIZE "$IMAGES/runner.img"
		if ! start_tcmu_runner 2>"$VM_SCRATCH/runner-start.txt"; then
			fail runner-start "$(cat "$VM_SCRATCH/runner-start.txt")"
		elif create_user_device bench_runner "qcow/$IMAGES/runner.img" && user_backstore_uio bench_runner >/dev/null; then
			sleep 1
			with_export bench_runner runner
			echo -e "runner\tloaded\t$(rss_kib "$RUNNER_PID")" >>"$OUT/rss.tsv"
			RUNNER_ANON=$(rss_parts "$RUNNER_PID" | cut -d' ' -f1)
		else
			fail runner-create "tcmu-runner device: $(tail -n 5 "$VM_SCRATCH/runner.out" | tr '\n' ' ')"
		fi
		# Removed while tcmu-runner still runs: it turned netlink replies on, and answers the removal.
		remove_user_backstore bench_runner
		stop_tcmu_runner
		cp "$VM_SCRATCH/runner.out" "$OUT/runner.out" 2>/dev/null
		cat "$VM_SCRATCH/runner-log/"* >"$OUT/runner.log" 2>/dev/null
		rm -f "$IMAGES/runner.img"
	else
		skip runner "tcmu-runner is not installed (apt-get install tcmu-runner)"
	fi
fi

# --- ours ----------------------------------------------------------------------------------------
if grep -qwE 'ram|file' <<<"$TARGETS"; then
	# Serve runs before the devices come and until they are gone: once tcmu-runner has turned
	# on netlink replies (SET_FEATURES, kernel-wide), enable and rmdir of a user device wait for
	# a handler's reply, and ours gives it.
	# BENCH_SERVE_ARGS: extra serve flags to measure (e.g. "--poll-us 200 --file-io threads").
	# shellcheck disable=SC2086
	start_appliance --allow-root "$IMAGES" ${BENCH_SERVE_ARGS:-} || { fail start "appliance did not start"; finish; }
	# RSS in steps: serve alone, one device (one worker), two devices (two workers), each once
	# the attach has settled: serve looks for a new device's ALUA groups for 20 s after it.
	SETTLE_S=25
	sleep 2
	record_rss none "serving nothing"
	if grep -qw ram <<<"$TARGETS"; then
		create_user_device bench_ram appliance/ram/benchram
		wait_for_log 'attached uio[0-9]+ bench_ram' 90 || fail attach-ram "no attach line"
		# While the attach settles (its 20 s look for ALUA groups, on a configfs thread), then idle:
		# the look is over and the configfs threads it used have retired (2 s without work).
		sleep 5
		record_rss settling "with one device, 5 s after its attach"
		sleep $((SETTLE_S - 5))
		record_rss idle "with one idle device"
	fi
	# 64 idle RAM devices (before any I/O, so no data-area pages are mapped yet): what each
	# attached device costs once the workers exist.
	if grep -qw ram <<<"$TARGETS" && [ -z "${BENCH_JOBS:-}" ]; then
		before=$(rss_kib "$APPLIANCE_PID")
		for i in $(seq 1 63); do create_user_backstore "bench_idle$i" $((16 * 1024 * 1024)) "appliance/ram/idle$i" || break; done
		wait_for_log 'attached uio[0-9]+ bench_idle63 ' 180 || diag "not all idle devices attached"
		sleep "$SETTLE_S"
		record_rss idle64 "with 64 idle devices ($before KiB with one)"
		echo -e "ours\tidle64-before\t$before" >>"$OUT/rss.tsv"
		for i in $(seq 1 63); do remove_user_backstore "bench_idle$i" 2>/dev/null; done
	fi
	if grep -qw file <<<"$TARGETS"; then
		create_user_device bench_file "appliance/file/$IMAGES/ours.img"
		wait_for_log 'attached uio[0-9]+ bench_file' 90 || fail attach-file "no attach line"
		sleep "$SETTLE_S"
		record_rss idle2 "with two idle devices"
	fi
	diag "ours: $(grep -oE 'attached uio[0-9]+ bench_(ram|file) .*' "$APPLIANCE_LOG" | tr '\n' ';')"
	sample_rss "$APPLIANCE_PID" "$VM_SCRATCH/rss-max" &
	RSS_PID=$!
	grep -qw ram <<<"$TARGETS" && with_export bench_ram ram
	grep -qw file <<<"$TARGETS" && with_export bench_file file
	if grep -qw ram <<<"$TARGETS"; then
		for i in 0 1 2 3; do create_user_device "bench_ram$i" "appliance/ram/benchram$i"; done
		for i in 0 1 2 3; do wait_for_log "attached uio[0-9]+ bench_ram$i" 90 || fail "attach-ram$i" "no attach line"; done
		diag "ours x4: $(grep -oE 'attached uio[0-9]+ bench_ram[0-3].*' "$APPLIANCE_LOG" | tr '\n' ';')"
		bench_four ram bench_ram0 bench_ram1 bench_ram2 bench_ram3
	fi
	kill "$RSS_PID" 2>/dev/null
	RSS_PID=
	echo -e "ours\tloaded\t$(cat "$VM_SCRATCH/rss-max" 2>/dev/null)" >>"$OUT/rss.tsv"
	diag "RSS after the jobs: $(rss_kib "$APPLIANCE_PID") KiB (anon file shmem: $(rss_parts "$APPLIANCE_PID")), $(ls /proc/"$APPLIANCE_PID"/task | wc -l) threads"
	# RssFile after I/O is mostly the kernel's data-area pages mapped from /dev/uioN (tcmu-runner
	# maps them the same way); RssAnon is the process's own memory.
	echo -e "ours\tloaded-anon\t$(rss_parts "$APPLIANCE_PID" | cut -d' ' -f1)" >>"$OUT/rss.tsv"
	[ -n "$RUNNER_ANON" ] && echo -e "runner\tloaded-anon\t$RUNNER_ANON" >>"$OUT/rss.tsv"
	curl -s --max-time 10 http://127.0.0.1:9540/metrics >"$OUT/metrics.txt" 2>/dev/null || diag "no metrics scrape"
	if [ -n "${BENCH_PROFILE:-}" ]; then . "$(dirname "${BASH_SOURCE[0]}")/bench-profile.sh"; fi
	grep -qw ram <<<"$TARGETS" && remove_user_backstore bench_ram
	if grep -qw ram <<<"$TARGETS"; then for i in 0 1 2 3; do remove_user_backstore "bench_ram$i"; done; fi
	grep -qw file <<<"$TARGETS" && remove_user_backstore bench_file
	stop_appliance || diag "appliance exited with status $?"
fi

finish
