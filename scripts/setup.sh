#!/usr/bin/env bash
# Sets up a fresh Debian machine for tcmu-appliance: the tools (Debian packages), Bun (from the
# npm registry), the JavaScript dependencies, and the build (dist/tcmu-appliance).
#   SETUP_SKIP_APT=1  do not install Debian packages (no root, or already there)
set -euo pipefail
cd "$(dirname "$0")/.."

BUN_VERSION=1.4.5
# qemu-system-x86, busybox-static, kmod, cpio: the real-kernel suite's VM; sg3-utils, fio,
# e2fsprogs: its clients; qemu-utils: qcow2 test images and the reference reader; tcmu-runner,
# jq: the side-by-side benchmark (scripts/bench-vm.sh); open-iscsi, curl, iproute2: the lifecycle
# and iSCSI guest scripts (initiator, /metrics scrape, loopback up); libiscsi-bin: the conformance
# suite (iscsi-test-cu, scripts/vm/guest/conformance.sh); chromium, fonts-dejavu-core: the status
# page's headless-browser test (test/status/status-page.test.ts); ceph-mon, ceph-osd, ceph-common,
# uuid-runtime: the throwaway Ceph cluster the rbd tests start (scripts/ceph/test-cluster.sh);
# multipath-tools: dm-multipath over two gateways in the HA guest script (scripts/vm/guest/ha.sh).
APT_PACKAGES=(qemu-system-x86 busybox-static kmod cpio sg3-utils fio e2fsprogs qemu-utils util-linux ca-certificates tcmu-runner jq open-iscsi curl iproute2 libiscsi-bin chromium fonts-dejavu-core ceph-mon ceph-osd ceph-common uuid-runtime multipath-tools)

if [ -z "${SETUP_SKIP_APT:-}" ]; then
	missing=()
	for package in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		[ "$(id -u)" = 0 ] || { echo "setup: need root to install: ${missing[*]} (or SETUP_SKIP_APT=1)" >&2; exit 1; }
		echo "setup: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
fi

# The real-kernel VM shares this machine's / read-only and mounts the guest kernel's modules on
# /lib/modules inside it (scripts/vm/init.sh), for libkmod users such as tcmu-runner; a container
# image may have no /lib/modules to mount on.
if [ ! -d /lib/modules ] && [ "$(id -u)" = 0 ]; then mkdir -p /lib/modules; fi

if ! command -v bun >/dev/null 2>&1 || [ "$(bun --version)" != "$BUN_VERSION" ]; then
	echo "setup: installing bun $BUN_VERSION from the npm registry"
	npm install -g --no-fund --no-audit "bun@$BUN_VERSION"
	hash -r
fi
bun --version >/dev/null

bun install --frozen-lockfile
bun run build
