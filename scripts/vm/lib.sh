# shellcheck shell=bash
# Host-side helpers for the real-kernel VM harness. Source this file (bash).
#
#   VM_REPO_ROOT  repository root (physical path; the guest sees it at the same path)
#   VM_CACHE      cache folder (default: $VM_REPO_ROOT/.vm-cache, git-ignored)
#   VM_CURRENT    env file written by prepare.sh (VM_KVER, VM_KERNEL, VM_INITRD, ...)

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
VM_REPO_ROOT=$(cd "$VM_DIR/../.." && pwd -P)
VM_CACHE=${VM_CACHE:-$VM_REPO_ROOT/.vm-cache}
VM_CURRENT=$VM_CACHE/current.env

# Modules the guest /init loads, in this order (missing ones are skipped). dm-* and scsi_dh_alua:
# dm-multipath with ALUA, overlay: a writable /etc over the read-only share, for
# scripts/vm/guest/ha.sh (all modules in Debian's 6.1, none built in).
VM_MODULES="netfs fscache 9pnet virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
virtio_pci 9pnet_virtio 9p configfs uio scsi_common scsi_mod crct10dif_common crc-t10dif crc64
crc64-rocksoft t10-pi sd_mod sg target_core_mod target_core_user tcm_loop target_core_file
target_core_iblock crc32c_generic crc32c-intel libcrc32c iscsi_target_mod mbcache jbd2 crc16 ext4
loop scsi_transport_iscsi libiscsi libiscsi_tcp iscsi_tcp dm-mod dm-multipath dm-round-robin
dm-service-time dm-queue-length scsi_dh_alua overlay"

vm_log() { printf 'vm: %s\n' "$*" >&2; }
vm_die() { printf 'vm: error: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch with sub-second precision (for timings).
vm_now() { date +%s.%N; }
vm_elapsed() { awk -v a="$1" -v b="$(vm_now)" 'BEGIN { printf "%.1f", b - a }'; }

# Name of the current Debian kernel image package (linux-image-6.1.0-NN-amd64).
# VM_KERNEL_PKG overrides. Prints nothing if apt knows no candidate.
vm_kernel_pkg() {
	if [ -n "${VM_KERNEL_PKG:-}" ]; then
		printf '%s\n' "$VM_KERNEL_PKG"
		return
	fi
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
