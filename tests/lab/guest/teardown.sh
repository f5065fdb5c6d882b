#!/usr/bin/env bash
# Undoes bring-up.sh inside the guest: stops every process in the lab's namespaces (NetworkManager first, so it
# does not react to the others vanishing), deletes the namespaces (their radios return to the initial namespace)
# and unloads mac80211_hwsim, so that a new bring-up starts from nothing. The logs stay. Safe to run when the lab
# is only partly up, or not at all. Same environment as bring-up.sh (LAB_STATE, LAB_LOGS).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LAB_STATE="${LAB_STATE:-/run/wifiprov-lab}"
export LAB_LOGS="${LAB_LOGS:-$LAB_STATE/logs}"
# shellcheck source=lib.sh
. "$here/lib.sh"

# Sends SIGNAL to every process of namespace NS (all of them were started by the lab, by bring-up or a test) and
# waits up to SECONDS for them to be gone: stop_ns NS SIGNAL SECONDS. Returns non-zero if some are left.
stop_ns() {
    local ns=$1 signal=$2 limit=$3 pids start=$SECONDS
    [ -e "/run/netns/$ns" ] || return 0
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -s "$signal" $pids 2>/dev/null
    while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; do
        [ $((SECONDS - start)) -lt "$limit" ] || return 1
        sleep 0.1
    done
}

nm_pid=$(cat "$LAB_STATE/run/NetworkManager.pid" 2>/dev/null || true)
if [ -n "$nm_pid" ] && kill "$nm_pid" 2>/dev/null; then
    lab_wait 20 "NetworkManager (pid $nm_pid) to exit" "! kill -0 $nm_pid"
fi
for ns in device phone world; do
    stop_ns "$ns" TERM 10 || stop_ns "$ns" KILL 5 || lab_log "warning: processes left in namespace $ns"
    if [ -e "/run/netns/$ns" ]; then
        ip netns del "$ns" || lab_log "warning: cannot delete namespace $ns"
    fi
done
if [ -d /sys/module/mac80211_hwsim ]; then
    # The radios come back to the initial namespace once their namespace is gone; until then the module is busy.
    lab_wait 10 "mac80211_hwsim to unload" "modprobe -r mac80211_hwsim"
fi
rm -rf "$LAB_STATE/run"
lab_log "torn down"
