#!/usr/bin/env bash
# Fetches the current Debian 6.1 kernel and builds the test VM's initramfs into .vm-cache/.
# Idempotent: a second run with the same kernel package and harness files does nothing.
#
# Usage: scripts/vm/prepare.sh [--force]
# Env:   VM_KERNEL_PKG=linux-image-6.1.0-NN-amd64 pins the package; VM_CACHE moves the cache.
# Needs: apt-get/apt-cache, dpkg, kmod (depmod, modinfo), busybox-static, cpio, gzip.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
[ "${1:-}" = --force ] && force=1

t0=$(vm_now)
mkdir -p "$VM_CACHE/debs"

pkg=$(vm_kernel_pkg)
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
	vm_log "apt knows no linux-image-amd64; running apt-get update"
	apt-get update -qq >&2 || true
	pkg=$(vm_kernel_pkg)
fi
if [ -z "$pkg" ]; then
	# Offline and no apt lists: keep using what is cached.
	if [ -f "$VM_CURRENT" ]; then
		vm_log "cannot resolve the kernel package; using the cached kernel"
		exit 0
	fi
	vm_die "cannot resolve linux-image-amd64 (apt-get update?)"
fi

stamp=$( {
	echo "$pkg"
	echo "$VM_MODULES"
	cat "$VM_DIR/prepare.sh" "$VM_DIR/init.sh"
} | sha256sum | cut -c1-16)

if [ $force = 0 ] && [ -f "$VM_CURRENT" ] && grep -qx "VM_STAMP=$stamp" "$VM_CURRENT"; then
	# shellcheck disable=SC1090
	. "$VM_CURRENT"
	if [ -f "$VM_KERNEL" ] && [ -f "$VM_INITRD" ]; then
		vm_log "prepared: $VM_KVER (cached, $(vm_elapsed "$t0") s)"
		exit 0
	fi
fi

for tool in dpkg-deb depmod modinfo cpio gzip; do
	command -v "$tool" >/dev/null || vm_die "missing $tool (apt-get install kmod cpio dpkg)"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || vm_die "missing busybox (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
	vm_die "$busybox is dynamically linked; install busybox-static"
fi

# --- kernel package ----------------------------------------------------------------------
deb=$(ls -1 "$VM_CACHE/debs/${pkg}_"*.deb 2>/dev/null | tail -n 1 || true)
if [ -z "$deb" ]; then
	vm_log "downloading $pkg"
	if ! (cd "$VM_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2); then
		[ "$(id -u)" = 0 ] || vm_die "apt-get download $pkg failed"
		vm_log "download failed; running apt-get update and retrying"
		apt-get update -qq >&2
		(cd "$VM_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
	fi
	deb=$(ls -1 "$VM_CACHE/debs/${pkg}_"*.deb | tail -n 1)
fi

kver=${pkg#linux-image-}
# The cache keeps the .deb and a slim tree: boot/vmlinuz-$kver, boot/config-$kver and
# lib/modules/$kver with just the VM's modules (depmod'ed; bind-mounted in the guest chroot).
ktree=$VM_CACHE/kernel/$kver
full=$VM_CACHE/extract.tmp
vm_log "extracting $(basename "$deb")"
rm -rf "$full"
mkdir -p "$full"
dpkg-deb -x "$deb" "$full"
# Debian 12 ships /lib/modules; later releases /usr/lib/modules.
if [ ! -d "$full/lib/modules/$kver" ] && [ -d "$full/usr/lib/modules/$kver" ]; then
	mkdir -p "$full/lib/modules"
	ln -s "../../usr/lib/modules/$kver" "$full/lib/modules/$kver"
fi
depmod -b "$full" "$kver"
[ -f "$full/boot/vmlinuz-$kver" ] || vm_die "no boot/vmlinuz-$kver in $deb"
moddir=$full/lib/modules/$kver

# --- initramfs ----------------------------------------------------------------------------
vm_log "building the initramfs for $kver"
stage=$VM_CACHE/initramfs.stage
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,host,tmp,etc/target,root,"lib/modules/$kver"}
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
ln -s ../bin/busybox "$stage/sbin/modprobe" # the kernel's request_module() runs this
cp "$VM_DIR/init.sh" "$stage/init"
chmod 755 "$stage/init" "$stage/bin/busybox"

: >"$stage/etc/vm-modules.order"
# Each listed module, preceded by its (soft) dependencies not already listed; absent and
# built-in modules are skipped.
files=$(for name in $VM_MODULES; do
	modprobe -d "$full" -S "$kver" --show-depends "$name" 2>/dev/null |
		awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++')
for file in $files; do
	name=$(basename "$file")
	name=${name%%.ko*}
	rel=${file#"$moddir"/}
	mkdir -p "$stage/lib/modules/$kver/$(dirname "$rel")"
	case $rel in
	*.ko.xz)
		xz -dc "$file" >"$stage/lib/modules/$kver/${rel%.xz}"
		rel=${rel%.xz}
		;;
	*.ko.zst)
		zstd -qdc "$file" >"$stage/lib/modules/$kver/${rel%.zst}"
		rel=${rel%.zst}
		;;
	*) cp "$file" "$stage/lib/modules/$kver/$rel" ;;
	esac
	echo "$name $rel" >>"$stage/etc/vm-modules.order"
done
cp "$moddir"/modules.order "$moddir"/modules.builtin* "$stage/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$stage" "$kver"

rm -rf "$ktree"
mkdir -p "$ktree/boot" "$ktree/lib/modules"
cp "$full/boot/vmlinuz-$kver" "$full/boot/config-$kver" "$ktree/boot/"
cp -a "$stage/lib/modules/$kver" "$ktree/lib/modules/"
kernel=$ktree/boot/vmlinuz-$kver

initrd=$VM_CACHE/initramfs-$kver.cpio.gz
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 | gzip -1) >"$initrd.tmp"
mv "$initrd.tmp" "$initrd"
nmods=$(wc -l <"$stage/etc/vm-modules.order")
rm -rf "$stage" "$full"

printf 'VM_KVER=%q\nVM_KTREE=%q\nVM_KERNEL=%q\nVM_INITRD=%q\nVM_STAMP=%s\n' \
	"$kver" "$ktree" "$kernel" "$initrd" "$stamp" >"$VM_CURRENT.tmp"
mv "$VM_CURRENT.tmp" "$VM_CURRENT"

# Drop older kernels so a CI cache of .vm-cache does not grow.
for old in "$VM_CACHE"/debs/*.deb "$VM_CACHE"/kernel/* "$VM_CACHE"/initramfs-*.cpio.gz; do
	case $old in
	"$deb" | "$ktree" | "$initrd") ;;
	*) [ -e "$old" ] && rm -rf "$old" ;;
	esac
done
vm_log "prepared: $kver, $nmods modules ($(vm_elapsed "$t0") s)"
