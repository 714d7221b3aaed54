#!/usr/bin/env bash
# The side-by-side benchmark on a real kernel: boots the test VM once and runs the same fio jobs
# through tcm_loop against kernel rd_mcp, kernel fileio, tcmu-runner and our RAM and file
# backstores (scripts/vm/guest/bench.sh), then prints IOPS and MB/s per job, our ratio to each
# peer against the goals, and our process's RSS.
#
# Usage: scripts/bench-vm.sh [OUT_DIR]     (default: .vm-cache/bench-<date>)
# Needs: dist/tcmu-appliance built (bun run build — never while a VM is running), the VM
# harness (scripts/vm), fio, jq, tcmu-runner (apt-get install tcmu-runner) on the host.
# Env: VM_TIMEOUT (default 1500), BENCH_RUNTIME_S, BENCH_TARGETS, BENCH_JOBS, BENCH_PROFILE
# (see bench.sh), APPLIANCE_BIN (default dist/tcmu-appliance), and TCMU_APPLIANCE_POLL_US,
# _FILE_IO, _MEMORY_INLINE_BYTES, _UIO_WAIT (passed to serve; defaults are what is measured).
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

out=${1:-$PWD/.vm-cache/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export VM_TIMEOUT=${VM_TIMEOUT:-1500}
export VM_OUT_DIR=$out
export VM_GUEST_ENV="BENCH_RUNTIME_S BENCH_TARGETS BENCH_JOBS BENCH_PROFILE APPLIANCE_BIN TCMU_APPLIANCE_FILE_IO TCMU_APPLIANCE_MEMORY_INLINE_BYTES TCMU_APPLIANCE_POLL_US TCMU_APPLIANCE_UIO_WAIT"
status=0
bash scripts/vm/run-vm.sh scripts/vm/guest/bench.sh >"$out/console.log" 2>&1 || status=$?
grep -E '^(PASS|FAIL|SKIP|#|RESULT)' "$out/console.log" || true
[ -s "$out/results.tsv" ] || { echo "bench-vm: no results (VM status $status); see $out/console.log" >&2; exit 1; }

echo
echo "fio through tcm_loop, $(uname -m) host, QEMU/TCG guest; IOPS and MB/s per target; ratios ours/peer"
awk -F'\t' '
	FNR == NR { iops[$1, $2] = $3; mbps[$1, $2] = $4 / 1e6; if (!($2 in seen)) { seen[$2] = 1; jobs[++n] = $2 } next }
	{ rss[$1, $2] = $3 }
	function cell(t, j) { return ((t, j) in iops) ? sprintf("%7d %7.1f", iops[t, j], mbps[t, j]) : sprintf("%7s %7s", "-", "-") }
	function ratio(a, b, j) { return ((a, j) in iops && (b, j) in iops && iops[b, j] > 0) ? sprintf("%5.2f", iops[a, j] / iops[b, j]) : "    -" }
	function goal(a, b, j,   r, g) {
		if (!((a, j) in iops && (b, j) in iops && iops[b, j] > 0)) return "   "
		r = iops[a, j] / iops[b, j]; g = (j ~ /1m/) ? 0.8 : 0.9
		return r >= g ? " ok" : "low"
	}
	END {
		printf "%-18s %-15s %-15s %-15s %-15s %-15s | %-9s %-9s %-9s %-9s\n", "job", "rd_mcp", "fileio", "tcmu-runner", "ours ram", "ours file", "ram/rd", "file/fio", "ram/tr", "file/tr"
		for (i = 1; i <= n; i++) {
			j = jobs[i]
			printf "%-18s %s %s %s %s %s | %s %s %s %s %s    %s\n", j, cell("rd", j), cell("fileio", j), cell("runner", j), cell("ram", j), cell("file", j),
				ratio("ram", "rd", j), goal("ram", "rd", j), ratio("file", "fileio", j), goal("file", "fileio", j), ratio("ram", "runner", j), ratio("file", "runner", j)
		}
		printf "\ngoals: ours/kernel >= 0.90 at 4k, >= 0.80 at 1m (\"ok\" / \"low\")\n"
		printf "RSS (KiB): ours idle %s, ours loaded (max) %s, tcmu-runner loaded %s\n", rss["ours", "idle"], rss["ours", "loaded"], rss["runner", "loaded"]
	}
' "$out/results.tsv" "$out/rss.tsv" | tee "$out/table.txt"
bash scripts/bench-table.sh "$out" >"$out/table.md"
echo "(raw results: $out; the table as Markdown: $out/table.md)"
exit "$status"
