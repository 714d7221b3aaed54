#!/usr/bin/env bash
# The side-by-side table of one bench-vm run as Markdown (for docs/benchmarks.md): IOPS and MB/s
# per target, ours/peer ratios with "ok"/"low" against the minimums, RSS below.
# Usage: scripts/bench-table.sh RESULTS_DIR   (a directory holding results.tsv and rss.tsv)
set -euo pipefail
dir=${1:?usage: scripts/bench-table.sh RESULTS_DIR}
[ -s "$dir/results.tsv" ] || { echo "bench-table: no $dir/results.tsv" >&2; exit 1; }
touch "$dir/rss.tsv"
awk -F'\t' '
	FNR == NR { iops[$1, $2] = $3; mbps[$1, $2] = $4 / 1e6; if (!($2 in seen)) { seen[$2] = 1; jobs[++n] = $2 } next }
	{ rss[$1, $2] = $3 }
	function cell(t, j) { return ((t, j) in iops) ? sprintf("%d / %.1f", iops[t, j], mbps[t, j]) : "-" }
	# The minimums of issue 11: against the kernel 0.9 at 4k QD32, 0.8 for 1 MiB and for four
	# devices at once; against tcmu-runner 1.8 at QD1, 1.3 at QD32, 1.5 for 1 MiB.
	function kernel_goal(j) { return (j ~ /1m|x4/) ? 0.8 : 0.9 }
	function runner_goal(j) { return (j ~ /1m/) ? 1.5 : (j ~ /qd1$/) ? 1.8 : 1.3 }
	function marked(a, b, j, g,   r) {
		if (!((a, j) in iops && (b, j) in iops && iops[b, j] > 0)) return "-"
		r = iops[a, j] / iops[b, j]
		return sprintf("%.2f %s", r, r >= g ? "ok" : "low")
	}
	function goal(a, b, j) { return marked(a, b, j, kernel_goal(j)) }
	function ratio(a, b, j) { return marked(a, b, j, runner_goal(j)) }
	function title(j,   parts, n) { n = split(j, parts, "-"); return parts[1] " " toupper(parts[2]) " " toupper(parts[3]) (n > 3 ? " ×" substr(parts[4], 2) " devices" : "") }
	END {
		print "| job | rd_mcp | fileio | tcmu-runner | ours RAM | ours file | RAM/rd | file/fileio | RAM/runner | file/runner |"
		print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for (i = 1; i <= n; i++) {
			j = jobs[i]
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", title(j), cell("rd", j), cell("fileio", j), cell("runner", j), cell("ram", j), cell("file", j),
				goal("ram", "rd", j), goal("file", "fileio", j), ratio("ram", "runner", j), ratio("file", "runner", j)
		}
		printf "\nRSS (KiB): ours serving no device %s, one device 5 s after its attach %s, idle (attach settled, one worker) %s, two (two workers) %s, 64 idle RAM devices %s (%s before the last 63), loaded (max) %s (anonymous %s); tcmu-runner loaded %s (anonymous %s)\n", \
			rss["ours", "none"], rss["ours", "settling"], rss["ours", "idle"], rss["ours", "idle2"], rss["ours", "idle64"], rss["ours", "idle64-before"], rss["ours", "loaded"], rss["ours", "loaded-anon"], rss["runner", "loaded"], rss["runner", "loaded-anon"]
	}
' "$dir/results.tsv" "$dir/rss.tsv"
