#!/bin/busybox sh
# /init of the test VM's initramfs (copied in by prepare.sh; runs under busybox sh).
#
# Loads the target-stack modules, mounts the host's / read-only over 9p at /host, sets up
# proc/sys/devtmpfs/devpts/configfs/tmpfs inside it, chroots into it and runs the job file
# named by `vmjob=<host path>` on the kernel command line (written by run-vm.sh). Prints
# `VM-EXIT-CODE=<n>` and powers off.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /host /tmp
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

rc=125
finish() {
	sync
	echo "VM-EXIT-CODE=$rc"
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

# --- modules ---------------------------------------------------------------------------
kver=$(uname -r)
while read -r name path; do
	[ -n "$name" ] || continue
	mod=$(echo "$name" | tr - _)
	[ -d "/sys/module/$mod" ] && continue # built in, or pulled in by request_module
	insmod "/lib/modules/$kver/$path" || echo "vm-init: insmod $name failed"
done </etc/vm-modules.order

# --- job -------------------------------------------------------------------------------
job=
for arg in $(cat /proc/cmdline); do
	case $arg in vmjob=*) job=${arg#vmjob=} ;; esac
done
[ -n "$job" ] || { echo "vm-init: no vmjob= on the kernel command line"; finish; }

R=/host
if ! mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=524288,cache=loose host $R; then
	echo "vm-init: cannot mount the host root over 9p"
	finish
fi
[ -f "$R$job" ] || { echo "vm-init: job file $job not visible in the guest"; finish; }

mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t configfs configfs $R/sys/kernel/config
mount -t devtmpfs devtmpfs $R/dev
# devtmpfs has no /dev/fd or /dev/std* (udev makes them): bash's <(...) needs /dev/fd.
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
cp "$R$job" $R/run/vm-job.sh

# The guest kernel's modules inside the chroot, for modprobe/libkmod users (tcmu-runner).
ktree=$(sed -n 's/^# VM_KTREE=//p' $R/run/vm-job.sh | head -n 1)
if [ -n "$ktree" ] && [ -d "$R$ktree/lib/modules/$kver" ] && [ -d $R/lib/modules ]; then
	mount -t tmpfs -o mode=755 tmpfs $R/lib/modules
	mkdir -p "$R/lib/modules/$kver"
	mount -o bind,ro "$R$ktree/lib/modules/$kver" "$R/lib/modules/$kver"
elif [ ! -d $R/lib/modules ]; then
	echo "vm-init: the host has no /lib/modules to mount the guest's modules on (scripts/setup.sh makes it): libkmod users such as tcmu-runner will not find them"
fi

# Optional writable share for results (run-vm.sh VM_OUT_DIR).
if grep -q '^# VM_OUT=1' $R/run/vm-job.sh; then
	mkdir -p $R/run/vm-out
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out $R/run/vm-out ||
		echo "vm-init: cannot mount the out share"
fi

echo "vm-init: ready after $(cut -d" " -f1 /proc/uptime) s uptime"
chroot $R /bin/bash /run/vm-job.sh
rc=$?

# Kernel trouble that `quiet` hides from the console (WARN_ON is printed at KERN_WARNING).
dmesg | grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace|hung_task|blocked for more than' |
	head -n 40 | sed 's/^/vm-dmesg: /'
finish
