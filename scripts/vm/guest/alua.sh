#!/usr/bin/env bash
# Real-kernel ALUA checks (docs/ha.md) on one gateway: a RAM device created with a serial, its own
# target port group and a peer's (`create --serial --alua-group --alua-peer`), exported through
# tcm_loop. Checks what the kernel and the initiator see: configfs groups and LUN membership,
# INQUIRY TPGS, VPD 0x83 port designators, REPORT TARGET PORT GROUPS (both formats), SET TARGET
# PORT GROUPS to standby refusing I/O with the standby sense (and the state mirrored into
# configfs), back to active/optimized with the data intact, and `list` showing the group.
# Run: scripts/vm/run-vm.sh scripts/vm/guest/alua.sh
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
plan 11

APP=$APPLIANCE_BIN
NAME=alua0
SERIAL=ha-shared-0001
W=$VM_SCRATCH/alua
mkdir -p "$W"
ip link set lo up 2>/dev/null

cleanup() {
	[ -n "${VM_OUT:-}" ] && cp "$APPLIANCE_LOG" "$VM_OUT/" 2>/dev/null
	timeout 60 "$APP" remove "$NAME" >/dev/null 2>&1
	[ -n "$APPLIANCE_PID" ] && kill -KILL "$APPLIANCE_PID" 2>/dev/null
	teardown_target
}
trap cleanup EXIT

hex_of() { od -An -v -tx1 "$1" | tr -d ' \n'; }
short() { printf '%s' "$1" | tr '\n' ' ' | head -c 300; }

start_appliance --metrics-listen 127.0.0.1:9540 --log-level debug || { fail start "serve did not start"; finish; }
out=$(timeout 120 "$APP" create "$NAME" ram --size 64M --export loop --serial "$SERIAL" \
	--alua-group gw-a --alua-id 1 --alua-state active-optimized --alua-peer gw-b:2:active-non-optimized --json 2>&1)
wwn=$(printf '%s' "$out" | grep -o '"wwn": "naa\.[0-9a-f]*"' | cut -d'"' -f4)
if [ -z "$wwn" ] || ! dev=$(wait_for_tcm_loop_disk "$wwn" 0 60); then
	fail create "no disk: $(short "$out")"
	finish
fi
bs=$(backstore_dir "$NAME")
diag "disk $dev, backstore $bs"

# 1. configfs: both groups with their ids and states, our LUN a member of gw-a.
groups="$(cat "$bs/alua/gw-a/tg_pt_gp_id") $(cat "$bs/alua/gw-a/alua_access_state") $(cat "$bs/alua/gw-b/tg_pt_gp_id") $(cat "$bs/alua/gw-b/alua_access_state")"
members=$(tr -d '\0' <"$bs/alua/gw-a/members")
if [ "$groups" = "1 0 2 1" ] && printf '%s' "$members" | grep -q "loopback/$wwn/tpgt_1/lun_0"; then
	pass configfs-groups
else
	fail configfs-groups "ids/states '$groups', members '$(short "$members")'"
fi

# 2. INQUIRY: TPGS = 3 (implicit and explicit). create makes the groups after enable, so after
# serve attached: serve takes them up at its next scan (10 s at most with netlink).
tpgs() { sg_inq "$dev" 2>&1 | grep -qE "TPGS=3"; }
if _wait_until 30 tpgs; then pass inquiry-tpgs; else fail inquiry-tpgs "$(short "$(sg_inq "$dev" 2>&1)")"; fi

# 4. VPD 0x83: relative target port 1 (the group id) and target port group 1.
vpd=$(sg_vpd -p di "$dev" 2>&1)
if printf '%s' "$vpd" | grep -qiE "Relative target port: 0x1" && printf '%s' "$vpd" | grep -qiE "Target port group: 0x1"; then
	pass vpd83-port-designators
else
	fail vpd83-port-designators "$(short "$vpd")"
fi

# 5. REPORT TARGET PORT GROUPS: gw-a (1) active/optimized, gw-b (2) active/non-optimized.
rtpg=$(sg_rtpg -d "$dev" 2>&1)
if printf '%s' "$rtpg" | grep -A1 -E "target port group id *: *0x1" | grep -q "active/optimized" &&
	printf '%s' "$rtpg" | grep -A1 -E "target port group id *: *0x2" | grep -q "active/non optimized"; then
	pass rtpg-states
else
	fail rtpg-states "$(short "$rtpg")"
fi

# 6. Extended header format: byte 4 = 0x10, byte 5 = implicit transition time (30).
sg_raw -r 64 -o "$W/rtpg.bin" "$dev" a3 2a 00 00 00 00 00 00 00 40 00 00 >/dev/null 2>&1
hex=$(hex_of "$W/rtpg.bin")
if [ "${hex:8:4}" = 101e ]; then
	pass rtpg-extended-header
else
	fail rtpg-extended-header "$hex"
fi

# 7. Data written while active/optimized.
head -c 1048576 /dev/urandom >"$W/data"
dd if="$W/data" of="$dev" bs=64k oflag=direct status=none
dd if="$dev" of="$W/back" bs=64k count=16 iflag=direct status=none
if cmp -s "$W/data" "$W/back"; then pass io-while-optimized; else fail io-while-optimized "read back differs"; fi

# 8. SET TARGET PORT GROUPS: gw-a to standby. A READ is then refused with NOT READY, TARGET
# PORT IN STANDBY STATE (02/04/0B), never executed.
printf '\x00\x00\x00\x00\x02\x00\x00\x01' >"$W/stpg.bin"
stpg=$(sg_raw -s 8 -i "$W/stpg.bin" "$dev" a4 0a 00 00 00 00 00 00 00 08 00 00 2>&1)
# The state change also reaches configfs (serve mirrors it), where the kernel raises ASYMMETRIC
# ACCESS STATE CHANGED for every I_T nexus: the READ may first get that unit attention.
for _ in 1 2 3; do
	read10=$(sg_raw -r 512 "$dev" 28 00 00 00 00 00 00 00 01 00 2>&1)
	printf '%s' "$read10" | grep -qi "Unit Attention" || break
done
if printf '%s' "$read10" | grep -qiE "standby|asc=0x4, ascq=0xb|Not ready.*0x4.*0xb"; then
	pass standby-refuses-read
else
	fail standby-refuses-read "stpg: $(short "$stpg") read: $(short "$read10")"
fi

# 9. The state reached configfs (mirrored by serve: 2 = standby).
if _wait_until 10 eval '[ "$(cat "$bs/alua/gw-a/alua_access_state")" = 2 ]'; then
	pass standby-mirrored-to-configfs
else
	fail standby-mirrored-to-configfs "alua_access_state is $(cat "$bs/alua/gw-a/alua_access_state")"
fi

# 10. RTPG in standby still answers (allowed) and shows gw-a standby.
rtpg=$(sg_rtpg -d "$dev" 2>&1)
if printf '%s' "$rtpg" | grep -A1 -E "target port group id *: *0x1" | grep -qi "standby"; then
	pass rtpg-in-standby
else
	fail rtpg-in-standby "$(short "$rtpg")"
fi

# 11. Back to active/optimized by STPG: the data reads back as written.
printf '\x00\x00\x00\x00\x00\x00\x00\x01' >"$W/stpg.bin"
sg_raw -s 8 -i "$W/stpg.bin" "$dev" a4 0a 00 00 00 00 00 00 00 08 00 00 >/dev/null 2>&1
for _ in 1 2 3; do sg_turs "$dev" >/dev/null 2>&1 && break; done # takes the unit attention
dd if="$dev" of="$W/back2" bs=64k count=16 iflag=direct status=none 2>/dev/null
if cmp -s "$W/data" "$W/back2" && [ "$(cat "$bs/alua/gw-a/alua_access_state")" = 0 ]; then
	pass optimized-again-data-intact
else
	fail optimized-again-data-intact "state $(cat "$bs/alua/gw-a/alua_access_state"), data $(cmp "$W/data" "$W/back2" 2>&1 | head -c 100)"
fi

# 12. list shows the export's group and state, /metrics the ALUA gauges.
listed=$(timeout 60 "$APP" list 2>&1)
metrics=$(curl -s --max-time 10 http://127.0.0.1:9540/metrics)
if printf '%s' "$listed" | grep -q "gw-a id 1 active-optimized" &&
	printf '%s' "$metrics" | grep -q "tcmu_appliance_alua_state{device=\"$NAME\",group=\"1\",state=\"active-optimized\"} 1" &&
	printf '%s' "$metrics" | grep -qE "tcmu_appliance_alua_transitions_total\{device=\"$NAME\"\} [1-9]"; then
	pass list-and-metrics
else
	fail list-and-metrics "list: $(short "$listed") metrics: $(printf '%s' "$metrics" | grep alua | tr '\n' ' ' | head -c 300)"
fi

finish
