#!/usr/bin/env bash
# Switches one of the lab's access points off or on again, inside the guest:
#
#   ap.sh down NAME    stop its hostapd (the network vanishes from the air; stations on it lose it)
#   ap.sh up NAME      start it again with the same configuration and wait until it beacons
#
# NAME is an SSID of lib.sh's LAB_WORLD. The interface keeps its address and its dnsmasq keeps running, so a
# station that comes back gets DHCP at once. Same environment as bring-up.sh (LAB_STATE, LAB_LOGS).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LAB_STATE="${LAB_STATE:-/run/wifiprov-lab}"
export LAB_LOGS="${LAB_LOGS:-$LAB_STATE/logs}"
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 2 ] || lab_die "usage: $0 up|down NAME"
case "$1" in
    down)
        lab_hostapd_stop "$2"
        lab_log "access point $2 is down"
        ;;
    up)
        lab_ap "$2"
        if [ -s "$LAB_STATE/hostapd-$ap_iface.pid" ] && kill -0 "$(cat "$LAB_STATE/hostapd-$ap_iface.pid")" 2>/dev/null; then
            lab_log "access point $2 is up already"
            exit 0
        fi
        lab_hostapd_start "$2"
        lab_hostapd_wait "$2"
        lab_log "access point $2 is up"
        ;;
    *) lab_die "usage: $0 up|down NAME" ;;
esac
