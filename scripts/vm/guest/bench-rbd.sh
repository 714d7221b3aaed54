#!/usr/bin/env bash
# Side by side on one throwaway Ceph cluster inside the VM (one mon, one memstore OSD): an RBD
# image served by tcmu-runner's rbd handler and one served by tcmu-appliance, each exported
# through tcm_loop and measured with the same fio jobs (4k randread/randwrite QD1 and QD32, 1 MiB
# write QD8), then `rbd bench` (librbd alone, no SCSI, no kernel: the ceiling) with the same
# sizes, patterns and queue depths on the same cluster. Prints one TSV line per job (target, job,
# IOPS, bytes/s, p50 µs, p99 µs) and a ratio table; results land in $VM_OUT when run-vm.sh is
# given VM_OUT_DIR. Not part of the suite: a benchmark, run by `scripts/bench-vm.sh rbd`.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 4

RUNTIME_S=${BENCH_RUNTIME_S:-8}
SIZE=$((256 * 1024 * 1024))
CLUSTER=$VM_SCRATCH/ceph
OUT=${VM_OUT:-$VM_SCRATCH/bench-rbd}
mkdir -p "$OUT"
: >"$OUT/results.tsv"
ip link set lo up 2>/dev/null
JOBS=("randread-4k-qd1 randread 4k 1" "randwrite-4k-qd1 randwrite 4k 1" "randread-4k-qd32 randread 4k 32" "randwrite-4k-qd32 randwrite 4k 32" "write-1m-qd8 write 1m 8")

cleanup() {
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	[ -n "$RUNNER_PID" ] && kill -KILL "$RUNNER_PID" 2>/dev/null
	teardown_target
	bash "$VM_REPO_ROOT/scripts/ceph/test-cluster.sh" stop "$CLUSTER" >/dev/null 2>&1
}
trap cleanup EXIT

fio_job() { # TARGET DEV NAME RW BS QD
	local target=$1 dev=$2 name=$3 rw=$4 bs=$5 qd=$6 json dir
	json=$OUT/fio-$target-$name.json
	timeout 120 fio --name="$name" --filename="$dev" --direct=1 --ioengine=libaio --iodepth="$qd" --rw="$rw" --bs="$bs" \
		--size=$((64 * 1024 * 1024)) --runtime="$RUNTIME_S" --time_based --ramp_time=1 --randrepeat=0 --norandommap \
		--output-format=json >"$json" 2>"$json.err"
	case $rw in *read) dir=read ;; *) dir=write ;; esac
	jq -r --arg t "$target" --arg n "$name" \
		".jobs[0].$dir | [\$t, \$n, (.iops|floor), .bw_bytes, (.clat_ns.percentile[\"50.000000\"]/1000|floor), (.clat_ns.percentile[\"99.000000\"]/1000|floor)] | @tsv" \
		"$json" >>"$OUT/results.tsv" 2>/dev/null || diag "$target $name: fio failed: $(tail -n 2 "$json.err" | tr '\n' ' ')"
}

bench() { # TARGET BACKSTORE
	local dev job
	dev=$(export_tcm_loop "$2") || { fail "$1-bench" "no tcm_loop disk"; return 1; }
	timeout 300 fio --name=fill --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 --rw=write --bs=1m --size=$((64 * 1024 * 1024)) \
		--output-format=terse >/dev/null 2>&1 || diag "$1: prefill failed"
	for job in "${JOBS[@]}"; do
		# shellcheck disable=SC2086
		fio_job "$1" "$dev" $job
	done
	unexport_tcm_loop "$2"
	if [ "$(grep -c "^$1	" "$OUT/results.tsv")" = ${#JOBS[@]} ]; then pass "$1-bench"; else fail "$1-bench" "$(grep -c "^$1	" "$OUT/results.tsv") of ${#JOBS[@]} jobs"; fi
}

conf=$(timeout 300 bash "$VM_REPO_ROOT/scripts/ceph/test-cluster.sh" start "$CLUSTER" --lifetime 1800 2>"$VM_SCRATCH/ceph.txt") ||
	{ fail ceph "cluster did not start: $(tail -n 2 "$VM_SCRATCH/ceph.txt" | tr '\n' ' ')"; finish; }
pass ceph-cluster
for image in runner ours; do timeout 120 rbd -c "$conf" create "rbd/$image" --size 256M; done

# --- tcmu-runner's rbd handler ---------------------------------------------------------------------
if start_tcmu_runner && create_user_backstore brunner $SIZE "rbd/rbd/runner;conf=$conf;id=admin" && user_backstore_uio brunner >/dev/null; then
	sleep 1
	bench runner brunner
else
	fail runner-bench "tcmu-runner rbd device: $(tail -n 3 "$VM_SCRATCH/runner.out" | tr '\n' ' ')"
fi
remove_user_backstore brunner
stop_tcmu_runner

# --- ours ------------------------------------------------------------------------------------
start_appliance --metrics-listen off || { fail ours-bench "serve did not start"; finish; }
if create_user_backstore bours $SIZE "appliance/rbd/rbd/ours;conf=$conf" && wait_for_log "attached uio[0-9]+ bours " 60; then
	bench ours bours
else
	fail ours-bench "our rbd device did not attach: $(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
fi
remove_user_backstore bours
stop_appliance || true

# --- rbd bench: librbd alone on the same cluster and image ---------------------------------------
# Same pattern, size and depth as each fio job, over a 64 MiB image written in full first (the
# 64 MiB the fio jobs use, so reads find data); a fixed amount of I/O (rbd bench has no runtime).
rbd_bench() { # NAME RW BS QD
	local name=$1 rw=$2 bs=$3 qd=$4 type pattern bytes total line
	case $rw in *read) type=read ;; *) type=write ;; esac
	case $rw in rand*) pattern=rand ;; *) pattern=seq ;; esac
	case $bs in 4k) bytes=4096 ;; 1m) bytes=$((1024 * 1024)) ;; esac
	if [ "$bytes" -ge $((1024 * 1024)) ]; then total=$((192 * 1024 * 1024)); elif [ "$qd" -gt 1 ]; then total=$((16 * 1024 * 1024)); else total=$((2 * 1024 * 1024)); fi
	# No librbd cache, as our store runs: writes are on the OSDs when acknowledged (with the default
	# writearound cache rbd bench would count writes acknowledged before they were).
	line=$(timeout 300 rbd -c "$conf" --rbd-cache=false bench --io-type "$type" --io-size "$bytes" --io-threads "$qd" --io-total "$total" --io-pattern "$pattern" rbd/ceiling 2>&1 | grep -E '^elapsed' | tail -n 1)
	# "elapsed: 8   ops: 2048   ops/sec: 254.32   bytes/sec: 1.0 MiB/s"
	local iops
	iops=$(awk '{ for (i = 1; i < NF; i++) if ($i == "ops/sec:") { printf "%d", $(i + 1) } }' <<<"$line")
	[ -n "$iops" ] || { diag "rbd bench $name: no result: $line"; return 1; }
	printf 'rbd-bench\t%s\t%s\t%s\t0\t0\n' "$name" "$iops" "$((iops * bytes))" >>"$OUT/results.tsv"
}
benched=0
timeout 120 rbd -c "$conf" create rbd/ceiling --size 64M &&
	timeout 300 rbd -c "$conf" bench --io-type write --io-size $((1024 * 1024)) --io-threads 8 --io-total $((64 * 1024 * 1024)) --io-pattern seq rbd/ceiling >/dev/null 2>&1 ||
	diag "rbd bench: the ceiling image could not be made"
for job in "${JOBS[@]}"; do
	# shellcheck disable=SC2086
	rbd_bench $job && benched=$((benched + 1))
done
if [ $benched = ${#JOBS[@]} ]; then pass rbd-bench; else fail rbd-bench "$benched of ${#JOBS[@]} jobs"; fi

# --- the table ---------------------------------------------------------------------------------
diag "job | runner IOPS | ours IOPS | rbd bench IOPS | ours/runner | ours/rbd bench | runner MB/s | ours MB/s | rbd bench MB/s"
for job in "${JOBS[@]}"; do
	name=${job%% *}
	r=$(awk -v n="$name" '$1 == "runner" && $2 == n { print $3, $4 }' "$OUT/results.tsv")
	o=$(awk -v n="$name" '$1 == "ours" && $2 == n { print $3, $4 }' "$OUT/results.tsv")
	b=$(awk -v n="$name" '$1 == "rbd-bench" && $2 == n { print $3, $4 }' "$OUT/results.tsv")
	[ -n "$r" ] && [ -n "$o" ] || continue
	[ -n "$b" ] || b="0 0"
	set -- $r $o $b
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
	diag "$name | $1 | $3 | $5 | $(ratio "$3" "$1") | $(ratio "$3" "$5") | $(($2 / 1000000)) | $(($4 / 1000000)) | $(($6 / 1000000))"
done
finish
