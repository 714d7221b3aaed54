#!/usr/bin/env bash
# Boots the Debian 6.1 test VM (QEMU/TCG) and runs one guest script inside it.
#
# Usage: scripts/vm/run-vm.sh GUEST_SCRIPT [ARGS...]
#
# The guest sees the host's / read-only (9p) with proc, sys, devtmpfs, configfs and tmpfs on
# /tmp, /run and /dev/shm; GUEST_SCRIPT runs under bash with the repository (same path as here)
# as working directory. Guest environment: VM_GUEST=1, VM_REPO_ROOT, VM_SCRATCH (empty tmpfs
# dir), HOME=/tmp/home, plus every variable named in VM_GUEST_ENV (space separated).
# Output is streamed to stdout; the exit status is the guest script's (124 on timeout, 125 if
# the guest never reported one).
#
# Env: VM_TIMEOUT (seconds, default 1200), VM_MEM (MiB, default 3072), VM_CPUS (default 2),
#      VM_LOG (also write the console log here), VM_OUT_DIR (host dir mounted writable in the
#      guest at /run/vm-out, exported there as VM_OUT), VM_QEMU_ARGS (extra qemu arguments),
#      VM_CMDLINE (extra kernel arguments), VM_SKIP_PREPARE=1 (use .vm-cache as it is;
#      run-suite.sh sets it; otherwise prepare.sh runs first, ~0.7 s when cached).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 GUEST_SCRIPT [ARGS...]" >&2; exit 2; }
script=$1
shift
if [ ! -f "$script" ] && [ -f "$VM_REPO_ROOT/$script" ]; then script=$VM_REPO_ROOT/$script; fi
[ -f "$script" ] || vm_die "no such guest script: $script"
script=$(cd "$(dirname "$script")" && pwd -P)/$(basename "$script")
case $script in
/tmp/* | /run/* | /dev/* | /proc/* | /sys/*) vm_die "$script is hidden in the guest (tmpfs there)" ;;
esac

if [ -z "${VM_SKIP_PREPARE:-}" ] || [ ! -f "$VM_CURRENT" ]; then "$VM_DIR/prepare.sh"; fi
# shellcheck disable=SC1090
. "$VM_CURRENT"

timeout_s=${VM_TIMEOUT:-1200}
mem=${VM_MEM:-3072}
cpus=${VM_CPUS:-2}

# --- job file (read by the guest /init through the 9p root share) -----------------------
jobdir=$VM_CACHE/jobs
case $jobdir in *[[:space:]]*) jobdir=/var/tmp ;; esac
mkdir -p "$jobdir"
job=$(mktemp "$jobdir/job.XXXXXX")
log=${VM_LOG:-}
tmplog=
if [ -z "$log" ]; then
	tmplog=$(mktemp "$jobdir/log.XXXXXX")
	log=$tmplog
fi
cleanup() { rm -f "$job" ${tmplog:+"$tmplog"}; }
trap cleanup EXIT

{
	echo "# VM_KTREE=$VM_KTREE"
	[ -n "${VM_OUT_DIR:-}" ] && echo "# VM_OUT=1"
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	echo 'export HOME=/tmp/home TMPDIR=/tmp VM_GUEST=1 VM_SCRATCH=/tmp/vm-scratch LANG=C.UTF-8 TERM=dumb'
	printf 'export VM_REPO_ROOT=%q VM_KVER=%q\n' "$VM_REPO_ROOT" "$VM_KVER"
	[ -n "${VM_OUT_DIR:-}" ] && echo 'export VM_OUT=/run/vm-out'
	for var in ${VM_GUEST_ENV:-}; do
		[ -n "${!var+x}" ] && printf 'export %s=%q\n' "$var" "${!var}"
	done
	echo 'mkdir -p "$HOME" "$VM_SCRATCH"'
	printf 'cd %q || exit 125\n' "$VM_REPO_ROOT"
	printf 'exec bash %q' "$script"
	for a in "$@"; do printf ' %q' "$a"; done
	echo
} >"$job"

esc() { printf '%s' "${1//,/,,}"; } # QEMU option values escape ',' as ',,'
# TCG, not KVM: these machines' /dev/kvm is kvm_pvm (PVM, virtualization without AMD-V/VT-x),
# which runs only kernels built as PVM guests; a stock Debian kernel stops after "Probing EDD"
# (-cpu host,-arch-capabilities) or aborts on MSR 0x10a (-cpu host). See docs/benchmarks.md.
qemu=(
	qemu-system-x86_64 -machine accel=tcg -cpu max -smp "$cpus" -m "$mem"
	-nographic -no-reboot -nic none
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD"
	-append "console=ttyS0 quiet panic=-1 vmjob=$job ${VM_CMDLINE:-}"
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
)
if [ -n "${VM_OUT_DIR:-}" ]; then
	mkdir -p "$VM_OUT_DIR"
	qemu+=(-virtfs "local,path=$(esc "$(cd "$VM_OUT_DIR" && pwd -P)"),mount_tag=out,security_model=none,multidevs=remap")
fi
# shellcheck disable=SC2206
qemu+=(${VM_QEMU_ARGS:-})

vm_log "boot $VM_KVER: $(basename "$script")${*:+ $*} (timeout ${timeout_s}s)"
t0=$(vm_now)
set +e
# Console: drop SeaBIOS's terminal resets/escapes and the serial line's CRs.
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 |
	sed -u -e 's/\x1bc/\n/g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r$//' | tee "$log"
qrc=${PIPESTATUS[0]}
set -e

code=$(grep -ao 'VM-EXIT-CODE=[0-9]*' "$log" | tail -n 1 | cut -d= -f2 || true)
if [ -n "$code" ]; then
	vm_log "guest exit code $code ($(vm_elapsed "$t0") s)"
	exit "$code"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	vm_log "timed out after ${timeout_s}s"
	exit 124
fi
vm_log "no exit code from the guest (qemu status $qrc, $(vm_elapsed "$t0") s)"
exit 125
