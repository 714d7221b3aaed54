#!/usr/bin/env bash
# libiscsi's conformance suite (iscsi-test-cu -t ALL --dataloss) over LIO iSCSI on 127.0.0.1,
# against three LUNs on 256 MiB raw files created with the kernel's defaults: kernel fileio, our
# file backstore, tcmu-runner's qcow handler. A test scores a pass when its output has no FAILED
# and it was not SKIPPED. FAIL when a test fileio passes fails on ours, unless docs/conformance.md
# lists it as impossible for a TCMU handler. Prints the pass/fail/skipped table of the three.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 5

SIZE=$((256 * 1024 * 1024))
IMAGES=$VM_SCRATCH/conformance
RESULTS=$VM_SCRATCH/conformance-results
DOC=$VM_REPO_ROOT/docs/conformance.md
RUN_TIMEOUT_S=${CONFORMANCE_TIMEOUT_S:-900}
mkdir -p "$IMAGES" "$RESULTS"
ip link set lo up
modprobe iscsi_target_mod 2>/dev/null

cleanup() {
	for iqn in "$TARGET_CFG"/iscsi/iqn.2003-01.org.example.conformance:*; do
		[ -d "$iqn" ] || continue
		echo 0 >"$iqn/tpgt_1/enable" 2>/dev/null
		rmdir "$iqn"/tpgt_1/np/* 2>/dev/null
		find "$iqn/tpgt_1/lun" -maxdepth 2 -type l -exec rm -f {} + 2>/dev/null
		rmdir "$iqn"/tpgt_1/lun/lun_0 "$iqn/tpgt_1" "$iqn" 2>/dev/null
	done
	teardown_target
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	[ -n "$RUNNER_PID" ] && kill -KILL "$RUNNER_PID" 2>/dev/null
}
trap cleanup EXIT

# iscsi_export BACKSTORE TARGET PORT: LUN 0 of iqn…:TARGET on 127.0.0.1:PORT, dynamic ACLs, no
# authentication (the VM's loopback only).
iscsi_export() {
	local tpg=$TARGET_CFG/iscsi/iqn.2003-01.org.example.conformance:$2/tpgt_1 bs attribute
	bs=$(backstore_dir "$1") || return 1
	mkdir -p "$tpg/lun/lun_0" || return 1
	ln -s "$bs" "$tpg/lun/lun_0/$1" || return 1
	mkdir "$tpg/np/127.0.0.1:$3" || return 1
	for attribute in generate_node_acls=1 cache_dynamic_acls=1 demo_mode_write_protect=0 authentication=0; do
		_cfg_write "$tpg/attrib/${attribute%=*}" "${attribute#*=}" || return 1
	done
	_cfg_write "$tpg/enable" 1
}

iscsi_unexport() { # BACKSTORE TARGET PORT
	local iqn=$TARGET_CFG/iscsi/iqn.2003-01.org.example.conformance:$2
	_cfg_write "$iqn/tpgt_1/enable" 0
	rmdir "$iqn/tpgt_1/np/127.0.0.1:$3"
	rm -f "$iqn/tpgt_1/lun/lun_0/$1"
	rmdir "$iqn/tpgt_1/lun/lun_0" "$iqn/tpgt_1" "$iqn"
}

# score LOG: one line per test, "Suite.Test pass|fail|skip", from iscsi-test-cu's verbose output
# (CUnit prints "Suite: S", then "  Test: T ..." and later "passed" or "FAILED").
score() {
	awk '
	function close_test() {
		if (name != "") print name, (failed ? "fail" : skipped ? "skip" : passed ? "pass" : "fail")
		name = ""
	}
	/^Suite: / { close_test(); suite = $2; next }
	{
		line = $0
		if (match(line, /Test: [^ ]+ \.\.\./)) {
			close_test()
			name = suite "." substr(line, RSTART + 6, RLENGTH - 10)
			failed = 0; skipped = 0; passed = 0
			line = substr(line, RSTART + RLENGTH)
		}
		if (name == "") next
		if (line ~ /^Run Summary:/) { close_test(); next }
		if (line ~ /FAILED/) failed = 1
		if (line ~ /\[SKIPPED\]/) skipped = 1
		if (line ~ /passed/) passed = 1
	}
	END { close_test() }' "$1"
}

# conform TARGET BACKSTORE PORT: exports BACKSTORE, runs the suite, writes $RESULTS/TARGET.
conform() {
	local target=$1 backstore=$2 port=$3 t0=$SECONDS rc=0 tests
	if ! iscsi_export "$backstore" "$target" "$port"; then
		fail "conformance-$target-ran" "could not export $backstore over iSCSI"
		return 1
	fi
	timeout "$RUN_TIMEOUT_S" iscsi-test-cu --dataloss -t ALL \
		"iscsi://127.0.0.1:$port/iqn.2003-01.org.example.conformance:$target/0" >"$RESULTS/$target.log" 2>&1 || rc=$?
	iscsi_unexport "$backstore" "$target" "$port"
	score "$RESULTS/$target.log" >"$RESULTS/$target"
	tests=$(wc -l <"$RESULTS/$target")
	diag "$target: $tests tests scored in $((SECONDS - t0)) s (iscsi-test-cu exit $rc)"
	# iscsi-test-cu exits non-zero when a test fails; a timeout (124) or a short list is the run failing.
	if [ "$rc" = 124 ]; then
		fail "conformance-$target-ran" "iscsi-test-cu still running after ${RUN_TIMEOUT_S}s; $(tail -n 2 "$RESULTS/$target.log" | tr '\n' ' ')"
	elif [ "$tests" -lt 200 ]; then
		fail "conformance-$target-ran" "only $tests tests scored; $(tail -n 3 "$RESULTS/$target.log" | tr '\n' ' ')"
	else
		pass "conformance-$target-ran"
	fi
}

command -v iscsi-test-cu >/dev/null || { fail conformance-tool "iscsi-test-cu missing (apt-get install libiscsi-bin)"; finish; }

# --- kernel fileio ---------------------------------------------------------------------------
truncate -s $SIZE "$IMAGES/fileio.img"
dir=$TARGET_CFG/core/fileio_1/conf_fileio
if mkdir -p "$dir" && _cfg_write "$dir/control" "fd_dev_name=$IMAGES/fileio.img,fd_dev_size=$SIZE" && _cfg_write "$dir/enable" 1; then
	conform fileio conf_fileio 3260
else
	fail conformance-fileio-ran "could not create the fileio backstore"
fi
remove_backstore conf_fileio
rm -f "$IMAGES/fileio.img"

# --- ours: the file backstore, kernel defaults -------------------------------------------------
truncate -s $SIZE "$IMAGES/ours.img"
if start_appliance --allow-root "$IMAGES" --metrics-listen off; then
	if create_user_backstore conf_ours $SIZE "appliance/file/$IMAGES/ours.img" && wait_for_log 'attached uio[0-9]+ conf_ours' 60; then
		conform ours conf_ours 3261
	else
		fail conformance-ours-ran "our device did not attach: $(tail -n 3 "$APPLIANCE_LOG" | tr '\n' ' ')"
	fi
	remove_user_backstore conf_ours
	stop_appliance || diag "serve exited with status $?"
else
	fail conformance-ours-ran "serve did not start"
fi
rm -f "$IMAGES/ours.img"

# --- tcmu-runner: qcow handler over a raw file, kernel defaults ----------------------------------
truncate -s $SIZE "$IMAGES/runner.img"
if ! start_tcmu_runner 2>"$VM_SCRATCH/runner-start.txt"; then
	fail conformance-runner-ran "$(cat "$VM_SCRATCH/runner-start.txt")"
elif create_user_backstore conf_runner $SIZE "qcow/$IMAGES/runner.img" && user_backstore_uio conf_runner >/dev/null; then
	sleep 1
	conform runner conf_runner 3262
else
	fail conformance-runner-ran "tcmu-runner device: $(tail -n 3 "$VM_SCRATCH/runner.out" | tr '\n' ' ')"
fi
# Removed while tcmu-runner runs: it turned netlink replies on and answers the removal.
remove_user_backstore conf_runner
stop_tcmu_runner
rm -f "$IMAGES/runner.img"

# --- the table, and the gate -----------------------------------------------------------------
count() { [ -f "$RESULTS/$1" ] && awk -v s="$2" '$2 == s' "$RESULTS/$1" | wc -l || echo -; }
diag "| target | pass | fail | skipped |"
diag "|---|---|---|---|"
for target in fileio runner ours; do
	diag "| $target | $(count $target pass) | $(count $target fail) | $(count $target skip) |"
done

impossible=$(awk '/^## Impossible for a TCMU handler/ { on = 1; next } /^## / { on = 0 } on' "$DOC" |
	grep -oE '^\| `[A-Za-z0-9_.]+`' | tr -d '|` ')
known=$(iscsi-test-cu -l 2>/dev/null | sed -n 's/^ALL\.//p')
unknown=$(for name in $impossible; do grep -qxF "$name" <<<"$known" || echo "$name"; done)
if [ -z "$impossible" ]; then
	fail conformance-impossible-list "no test listed under '## Impossible for a TCMU handler' in docs/conformance.md"
elif [ -n "$unknown" ]; then
	fail conformance-impossible-list "docs/conformance.md lists tests iscsi-test-cu does not have: $(echo $unknown)"
else
	pass conformance-impossible-list
fi

if [ -s "$RESULTS/fileio" ] && [ -s "$RESULTS/ours" ]; then
	regressions=$(join <(sort "$RESULTS/fileio") <(sort "$RESULTS/ours") | awk '$2 == "pass" && $3 != "pass" { print $1 }' |
		while read -r name; do grep -qxF "$name" <<<"$impossible" || echo "$name"; done)
	missing=$(join -v 1 <(sort "$RESULTS/fileio") <(sort "$RESULTS/ours") | awk '$2 == "pass" { print $1 }')
	better=$(join <(sort "$RESULTS/fileio") <(sort "$RESULTS/ours") | awk '$2 != "pass" && $3 == "pass"' | wc -l)
	diag "tests ours passes that fileio does not: $better"
	for name in $(join <(sort "$RESULTS/fileio") <(sort "$RESULTS/ours") | awk '$2 == "pass" && $3 != "pass" { print $1 }'); do
		diag "fileio passes, ours does not: $name$(grep -qxF "$name" <<<"$impossible" && echo ' (impossible for TCMU: docs/conformance.md)')"
	done
	if [ -z "$regressions$missing" ]; then
		pass conformance-no-regression-vs-fileio
	else
		fail conformance-no-regression-vs-fileio "fileio passes, ours fails or did not run: $(echo $regressions $missing)"
	fi
else
	fail conformance-no-regression-vs-fileio "no results for fileio or ours"
fi
# With VM_OUT (run-vm.sh VM_OUT_DIR=…), the raw logs and scores come back to the host.
[ -n "${VM_OUT:-}" ] && cp "$RESULTS"/* "$VM_OUT/" 2>/dev/null
finish
