#!/usr/bin/env bash
# The side-by-side benchmark on a real kernel: boots the test VM once and runs the same fio jobs
# through tcm_loop against kernel rd_mcp, kernel fileio, tcmu-runner and our RAM and file
# backstores (scripts/vm/guest/bench.sh), then prints IOPS and MB/s per job, our ratio to each
# peer against the goals, and our process's RSS, as Markdown (scripts/bench-table.sh).
#
# Usage: scripts/bench-vm.sh [OUT_DIR]     (default: .vm-cache/bench-<date>)
#        scripts/bench-vm.sh rbd [OUT_DIR] the rbd backstore against tcmu-runner's rbd handler and
#                                          `rbd bench` on one Ceph cluster in the VM (bench-rbd.sh)
# Needs: dist/tcmu-appliance built (bun run build — never while a VM is running), the VM
# harness (scripts/vm), fio, jq, tcmu-runner (apt-get install tcmu-runner) on the host.
# Env: VM_TIMEOUT (default 1500), BENCH_RUNTIME_S, BENCH_TARGETS, BENCH_JOBS, BENCH_PROFILE
# (see bench.sh), APPLIANCE_BIN (default dist/tcmu-appliance), and BENCH_SERVE_ARGS (extra
# serve flags, e.g. "--poll-us 200" or "--data-plane-threads 1"; defaults are what is measured).
# TCG runs everything 10-50x slower than native: compare the columns of one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "${APPLIANCE_BIN:-dist/tcmu-appliance}" ] || { echo "bench-vm: ${APPLIANCE_BIN:-dist/tcmu-appliance} is missing: bun run build" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench-vm: jq is missing" >&2; exit 2; }

# tcmu-runner loads target_core_user through libkmod, which needs /lib/modules/<guest kernel>:
# the VM's init bind-mounts the guest's modules there, over a directory that must exist in the
# host root it shares (hosts booted without distribution kernels may have none).
if [ ! -d /lib/modules ]; then
	mkdir -p /lib/modules 2>/dev/null || echo "bench-vm: no /lib/modules on the host: tcmu-runner will not start in the VM" >&2
fi

guest=scripts/vm/guest/bench.sh
if [ "${1:-}" = rbd ]; then
	guest=scripts/vm/guest/bench-rbd.sh
	shift
fi
out=${1:-$PWD/.vm-cache/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export VM_TIMEOUT=${VM_TIMEOUT:-1500}
export VM_OUT_DIR=$out
if [ "$guest" = scripts/vm/guest/bench-rbd.sh ]; then
	export VM_GUEST_ENV="BENCH_RUNTIME_S APPLIANCE_BIN"
	status=0
	bash scripts/vm/run-vm.sh "$guest" >"$out/console.log" 2>&1 || status=$?
	grep -E '^(PASS|FAIL|SKIP|#|RESULT)' "$out/console.log" || true
	[ -s "$out/results.tsv" ] || { echo "bench-vm: no results (VM status $status); see $out/console.log" >&2; exit 1; }
	echo "minimums: ours/tcmu-runner >= 1.5 at 4k QD32 and 1 MiB; ours/rbd bench >= 0.7 at 1 MiB (raw results: $out)"
	exit "$status"
fi
export VM_GUEST_ENV="BENCH_RUNTIME_S BENCH_TARGETS BENCH_JOBS BENCH_PROFILE APPLIANCE_BIN BENCH_SERVE_ARGS"
status=0
bash scripts/vm/run-vm.sh "$guest" >"$out/console.log" 2>&1 || status=$?
grep -E '^(PASS|FAIL|SKIP|#|RESULT)' "$out/console.log" || true
[ -s "$out/results.tsv" ] || { echo "bench-vm: no results (VM status $status); see $out/console.log" >&2; exit 1; }

echo
echo "fio through tcm_loop, $(uname -m) host, QEMU/TCG guest; IOPS / MB/s per target; ratios ours/peer"
echo "minimums (\"ok\" / \"low\"): ours/kernel >= 0.90 at 4k QD32, >= 0.80 at 1m and for 4 devices; ours/tcmu-runner >= 1.8 at QD1, >= 1.3 at QD32, >= 1.5 at 1m"
echo
bash scripts/bench-table.sh "$out" | tee "$out/table.md"
echo "(raw results: $out; this table: $out/table.md)"
exit "$status"
