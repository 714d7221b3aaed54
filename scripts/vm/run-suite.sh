#!/usr/bin/env bash
# Runs every guest script in scripts/vm/suite.list in its own VM and sums up the results.
#
# Usage: scripts/vm/run-suite.sh [LIST_FILE]
# Prints `vm: N passed, M failed`; exits non-zero if a test failed, a script ran fewer checks
# than its `plan N` declares (or declared none), skipped a check without saying why, or a VM run
# failed (non-zero guest exit, timeout, no exit code). Console logs: .vm-cache/logs/<script>.log.
# Env: as run-vm.sh (VM_TIMEOUT applies to each VM run).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

list=${1:-$VM_DIR/suite.list}
[ -f "$list" ] || vm_die "no suite list $list"

t0=$(vm_now)
"$VM_DIR/prepare.sh"
export VM_SKIP_PREPARE=1

logs=$VM_CACHE/logs
mkdir -p "$logs"
passed=0 failed=0 runs_failed=0
summary=()
used_logs=()
while IFS= read -r line || [ -n "$line" ]; do
	line=${line%%#*}
	line=$(printf '%s' "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
	[ -n "$line" ] || continue
	# shellcheck disable=SC2086
	set -- $line # a script path, optionally followed by arguments
	log=$logs/$(basename "$1" .sh).log
	used_logs+=("$log")
	t1=$(vm_now)
	rc=0
	VM_LOG=$log "$VM_DIR/run-vm.sh" "$@" </dev/null || rc=$?
	[ -f "$log" ] || : >"$log" # a run that could not start wrote nothing
	p=$(grep -c '^PASS ' "$log" || true)
	f=$(grep -c '^FAIL ' "$log" || true)
	s=$(grep -c '^SKIP ' "$log" || true)
	# Every script declares its checks (plan N): a run that made fewer stopped early or lost some.
	planned=$(grep -m 1 -oE '^PLAN [0-9]+' "$log" | cut -d' ' -f2 || true)
	if [ -z "$planned" ]; then
		echo "FAIL $(basename "$1")-plan: the script declared no plan" >>"$log"
		f=$((f + 1))
	elif [ $((p + f + s)) -lt "$planned" ]; then
		echo "FAIL $(basename "$1")-plan: $((p + f + s)) of $planned declared checks ran" >>"$log"
		f=$((f + 1))
	fi
	# A SKIP must say why (`skip NAME REASON`): one without a reason could hide a check that never ran.
	unexplained=$(grep -cE '^SKIP [^ :]+:?[[:space:]]*$' "$log" || true)
	if [ "$unexplained" != 0 ]; then
		echo "FAIL $(basename "$1")-skips: $unexplained SKIP line(s) without a reason" >>"$log"
		f=$((f + 1))
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	status=ok
	if [ "$rc" != 0 ]; then
		runs_failed=$((runs_failed + 1))
		status="exit $rc"
		if [ "$f" = 0 ]; then # a crash, hang or setup error: count the run itself as a failure
			failed=$((failed + 1))
			echo "FAIL $(basename "$1"): VM run failed with exit $rc" >>"$log"
		fi
	fi
	summary+=("$(printf '%-40s %3d passed %3d failed  %-8s %6s s' "$1" "$p" "$f" "$status" "$(vm_elapsed "$t1")")")
done <"$list"

echo
echo "vm suite ($(vm_elapsed "$t0") s):"
printf '  %s\n' "${summary[@]}"
[ ${#used_logs[@]} = 0 ] || grep -h '^FAIL ' "${used_logs[@]}" 2>/dev/null | sed 's/^/  /' || true
echo "vm: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$runs_failed" = 0 ] && [ ${#summary[@]} -gt 0 ]
