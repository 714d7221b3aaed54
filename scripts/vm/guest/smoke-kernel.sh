#!/usr/bin/env bash
# Proof that the VM's kernel target stack works, without the appliance: a kernel ramdisk
# (rd_mcp) backstore exported through tcm_loop and probed with sg3-utils, and a TCMU user
# backstore that shows up as /dev/uioN (never exported: with no handler its commands would
# hang until cmd_time_out).
# Run: scripts/vm/run-vm.sh scripts/vm/guest/smoke-kernel.sh
set -u
. "$(dirname "$0")/lib.sh"
plan 12
trap teardown_target EXIT

diag "kernel $(uname -r), $(nproc) cpus, modules: $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"

if [ -d "$TARGET_CFG/core" ] && [ -f "$TARGET_CFG/version" ]; then
	pass configfs_target
	diag "$(head -n 1 "$TARGET_CFG/version")"
else
	fail configfs_target "no $TARGET_CFG (configfs or target_core_mod missing)"
	finish
fi

# --- kernel ramdisk through tcm_loop --------------------------------------------------------
size=$((64 << 20))
if create_rd_backstore smoke_rd "$size"; then
	pass rd_backstore_create
else
	fail rd_backstore_create "cannot create rd_mcp_1/smoke_rd"
	finish
fi

if dev=$(export_tcm_loop smoke_rd); then
	pass tcm_loop_disk
	diag "smoke_rd is $dev ($(cat "$TARGET_CFG/loopback/$(tcm_loop_wwn smoke_rd)/tpgt_1/address"))"
else
	fail tcm_loop_disk "no /dev/sdX for the loopback target"
	finish
fi

if out=$(sg_inq "$dev" 2>&1) && grep -q 'Vendor identification: LIO-ORG' <<<"$out"; then
	pass sg_inq
	diag "$(grep -E 'identification' <<<"$out" | tr -s ' ' | tr '\n' ';')"
else
	fail sg_inq "$(tail -n 3 <<<"$out" | tr '\n' ' ')"
fi

if out=$(sg_readcap "$dev" 2>&1) &&
	grep -q "Last LBA=$((size / 512 - 1))" <<<"$out" &&
	grep -q 'Logical block length=512 bytes' <<<"$out"; then
	pass sg_readcap
else
	fail sg_readcap "$(tr '\n' ' ' <<<"$out")"
fi

blocks=$(cat "/sys/class/block/${dev#/dev/}/size")
if [ "$blocks" = $((size / 512)) ]; then pass block_size; else fail block_size "size $blocks sectors"; fi

# Direct I/O round trip through the whole stack.
head -c $((1 << 20)) /dev/urandom >"$VM_SCRATCH/pattern"
if dd if="$VM_SCRATCH/pattern" of="$dev" bs=64k seek=7 oflag=direct status=none &&
	dd if="$dev" of="$VM_SCRATCH/readback" bs=64k skip=7 count=16 iflag=direct status=none &&
	cmp -s "$VM_SCRATCH/pattern" "$VM_SCRATCH/readback"; then
	pass direct_io_roundtrip
else
	fail direct_io_roundtrip "data read back differs"
fi

if unexport_tcm_loop smoke_rd && ! [ -e "$dev" ]; then
	pass tcm_loop_unexport
else
	fail tcm_loop_unexport "target left behind or $dev still present"
fi
if remove_backstore smoke_rd; then pass rd_backstore_remove; else fail rd_backstore_remove; fi

# --- TCMU user backstore (no handler attached) ---------------------------------------------
if create_user_backstore smoke_user $((16 << 20)) smoke/none; then
	pass user_backstore_create
	if uio=$(user_backstore_uio smoke_user); then
		diag "uio devices: $(for f in /sys/class/uio/*/name; do printf '%s=%s ' "$(basename "$(dirname "$f")")" "$(cat "$f")"; done)"
		if [ "$(cat "/sys/class/uio/$uio/name")" = "tcm-user/${USER_HBA#user_}/smoke_user/smoke/none" ] &&
			[ -c "/dev/$uio" ]; then
			pass user_backstore_uio
		else
			fail user_backstore_uio "/dev/$uio missing or name $(cat "/sys/class/uio/$uio/name")"
		fi
		diag "maps: $(cat /sys/class/uio/"$uio"/maps/map0/size 2>/dev/null) bytes; attrib: cmd_time_out=$(cat "$TARGET_CFG/core/$USER_HBA/smoke_user/attrib/cmd_time_out")"
	else
		fail user_backstore_uio "no tcm-user uio device"
	fi
	if remove_user_backstore smoke_user && ! [ -e "/dev/${uio:-none}" ]; then
		pass user_backstore_remove
	else
		fail user_backstore_remove "backstore or /dev/${uio:-?} left behind"
	fi
else
	fail user_backstore_create "cannot enable core/$USER_HBA/smoke_user"
fi

finish
