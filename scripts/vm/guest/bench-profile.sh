# shellcheck shell=bash
# Sourced by bench.sh with BENCH_PROFILE=1 while the appliance still serves bench_ram: where the
# time goes during short fio jobs on the RAM device. Per thread of our process: CPU time (user,
# system) and context switches over the job, from /proc; system-wide: perf's cpu-clock samples
# by process, shared object and symbol (TCG has no hardware events; call graphs are left out,
# they made perf too slow under emulation). Bun's JIT code shows as [JIT]; kernel and library
# symbols are named; strace counts system calls per command. Output: $OUT/profile-<job>.txt.

# thread_times: "tid comm utime stime voluntary nonvoluntary" per thread of the appliance.
thread_times() {
	local task
	for task in /proc/"$APPLIANCE_PID"/task/*; do
		printf '%s %s %s %s\n' "${task##*/}" "$(tr ' ' _ <"$task/comm")" \
			"$(awk '{ print $14, $15 }' "$task/stat")" \
			"$(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 } END { print v, n }' "$task/status")"
	done
}

# profile_job NAME RW BS QD: one fio job on the RAM device, timed per thread, then sampled.
profile_job() {
	local name=$1 rw=$2 bs=$3 qd=$4 dev seconds=6 file=$OUT/profile-$1.txt ios
	dev=$(export_tcm_loop bench_ram) || return 1
	thread_times | sort >"$VM_SCRATCH/threads-before"
	fio --name="$name" --filename="$dev" --direct=1 --ioengine=libaio --iodepth="$qd" --rw="$rw" --bs="$bs" \
		--size=$REGION --runtime=$seconds --time_based --output-format=json >"$VM_SCRATCH/profile.json" 2>/dev/null
	thread_times | sort >"$VM_SCRATCH/threads-after"
	ios=$(jq -r '(.jobs[0].read.total_ios + .jobs[0].write.total_ios)' "$VM_SCRATCH/profile.json")
	{
		echo "# $name: $ios commands in ${seconds}s ($(jq -r '.jobs[0].read.iops + .jobs[0].write.iops | floor' "$VM_SCRATCH/profile.json") IOPS), clock ticks of $(getconf CLK_TCK)/s"
		echo "## appliance threads over the job: CPU ticks (user system), context switches (voluntary involuntary), CPU µs per command"
		join "$VM_SCRATCH/threads-before" "$VM_SCRATCH/threads-after" | awk -v ios="$ios" -v hz="$(getconf CLK_TCK)" '
			{ user = $8 - $3; sys = $9 - $4; if (user + sys == 0 && $10 - $5 == 0) next
			  printf "%-16s user %5d sys %5d  vcsw %6d nvcsw %6d  %7.1f µs/command\n", $2, user, sys, $10 - $5, $11 - $6, (user + sys) * 1e6 / hz / (ios > 0 ? ios : 1) }'
	} >"$file" 2>&1
	# System calls per command: strace slows the process many times over, so only the counts
	# per command mean anything, not the rate.
	if command -v strace >/dev/null; then
		strace -c -f -p "$APPLIANCE_PID" -o "$VM_SCRATCH/strace-$name.txt" 2>/dev/null &
		local tracer=$!
		sleep 1
		fio --name="$name-strace" --filename="$dev" --direct=1 --ioengine=libaio --iodepth="$qd" --rw="$rw" --bs="$bs" \
			--size=$REGION --runtime=3 --time_based --output-format=json >"$VM_SCRATCH/strace.json" 2>/dev/null
		kill -INT "$tracer" 2>/dev/null
		wait "$tracer" 2>/dev/null
		{
			echo "## system calls of the appliance (strace -c -f) over a 3 s job of $(jq -r '(.jobs[0].read.total_ios + .jobs[0].write.total_ios)' "$VM_SCRATCH/strace.json") commands"
			head -n 30 "$VM_SCRATCH/strace-$name.txt"
		} >>"$file" 2>&1
	fi
	if timeout 120 perf record -F 199 -a -o "$VM_SCRATCH/perf-$name.data" -- \
		fio --name="$name-perf" --filename="$dev" --direct=1 --ioengine=libaio --iodepth="$qd" --rw="$rw" --bs="$bs" \
		--size=$REGION --runtime=4 --time_based --output-format=terse >/dev/null 2>&1; then
		{
			echo "## perf cpu-clock samples: by process"
			timeout 120 perf report -i "$VM_SCRATCH/perf-$name.data" --stdio --no-children --sort comm 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12
			echo "## by process and shared object"
			timeout 120 perf report -i "$VM_SCRATCH/perf-$name.data" --stdio --no-children --sort comm,dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 24
			echo "## top symbols"
			timeout 120 perf report -i "$VM_SCRATCH/perf-$name.data" --stdio --no-children --sort comm,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40
		} >>"$file" 2>&1
	else
		echo "## perf record failed or timed out" >>"$file"
	fi
	unexport_tcm_loop bench_ram
	diag "profile $name written ($(wc -l <"$file") lines)"
}

if command -v perf >/dev/null && timeout 30 perf record -o "$VM_SCRATCH/perf-probe.data" -e cpu-clock -- true >/dev/null 2>&1; then
	profile_job randread-4k-qd1 randread 4k 1
	profile_job randread-4k-qd32 randread 4k 32
	profile_job read-1m-qd8 read 1m 8
else
	skip profile "perf does not work here"
fi
