#!/usr/bin/env bash
# The side-by-side table of one bench-vm run as Markdown (for docs/benchmarks.md): IOPS and MB/s
# per target, ours/peer ratios with "ok"/"low" against the goals, RSS below.
# Usage: scripts/bench-table.sh RESULTS_DIR   (a directory holding results.tsv and rss.tsv)
set -euo pipefail
dir=${1:?usage: scripts/bench-table.sh RESULTS_DIR}
[ -s "$dir/results.tsv" ] || { echo "bench-table: no $dir/results.tsv" >&2; exit 1; }
touch "$dir/rss.tsv"
awk -F'\t' '
	FNR == NR { iops[$1, $2] = $3; mbps[$1, $2] = $4 / 1e6; if (!($2 in seen)) { seen[$2] = 1; jobs[++n] = $2 } next }
	{ rss[$1, $2] = $3 }
	function cell(t, j) { return ((t, j) in iops) ? sprintf("%d / %.1f", iops[t, j], mbps[t, j]) : "-" }
	function ratio(a, b, j,   r) {
		if (!((a, j) in iops && (b, j) in iops && iops[b, j] > 0)) return "-"
		r = iops[a, j] / iops[b, j]
		return sprintf("%.2f", r)
	}
	function goal(a, b, j,   r) {
		if (!((a, j) in iops && (b, j) in iops && iops[b, j] > 0)) return "-"
		r = iops[a, j] / iops[b, j]
		return sprintf("%.2f %s", r, r >= ((j ~ /1m/) ? 0.8 : 0.9) ? "ok" : "low")
	}
	function title(j,   parts) { split(j, parts, "-"); return parts[1] " " toupper(parts[2]) " " toupper(parts[3]) }
	END {
		print "| job | rd_mcp | fileio | tcmu-runner | ours RAM | ours file | RAM/rd | file/fileio | RAM/runner | file/runner |"
		print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for (i = 1; i <= n; i++) {
			j = jobs[i]
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", title(j), cell("rd", j), cell("fileio", j), cell("runner", j), cell("ram", j), cell("file", j),
				goal("ram", "rd", j), goal("file", "fileio", j), ratio("ram", "runner", j), ratio("file", "runner", j)
		}
		printf "\nRSS (KiB): ours idle %s, ours loaded (max) %s, tcmu-runner loaded %s\n", rss["ours", "idle"], rss["ours", "loaded"], rss["runner", "loaded"]
	}
' "$dir/results.tsv" "$dir/rss.tsv"
