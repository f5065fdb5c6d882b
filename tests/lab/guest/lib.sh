# Shared by the radio lab's guest scripts (bring-up.sh, ap.sh, teardown.sh); sourced, not run. Everything here
# runs inside the lab's qemu guest as root, never on the host: it loads kernel modules, makes network namespaces
# and starts daemons.
#
# Callers set LAB_STATE (runtime files: configs, pid files, sockets) and LAB_LOGS (every daemon's log; the host
# reads it when it is inside a --rwdir folder) before sourcing.

# The guest's PATH comes from virtme-ng's init; the daemons live in sbin.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

: "${LAB_STATE:?LAB_STATE must name the lab's state directory}"
: "${LAB_LOGS:?LAB_LOGS must name the lab's log directory}"

# The world's access points, one per line: SSID, security (wpa2 | wpa3 | open), passphrase, visibility, and the
# third octet of its /24. Each gets a radio of its own in namespace `world`, an interface named after the SSID in
# lower case, address 10.77.<octet>.1 and a dnsmasq handing out .10 to .99.
#
# Every access point is on channel 6 but FarNet (channel 1, the sixth column; the default is LAB_CHANNEL): the
# device runs its own access point (uap0) next to its station, and hwsim (like a Raspberry Pi's brcmfmac) allows
# that only with both on one channel, so joining FarNet moves the device's access point.
LAB_WORLD="HomeNet wpa2 homenet-pass visible 1
Wpa3Net wpa3 wpa3net-pass visible 2
OpenNet open - visible 3
HiddenNet wpa2 hiddennet-pass hidden 4
BackupNet wpa2 backupnet-pass visible 5
FarNet wpa2 farnet-pass visible 6 1"
LAB_CHANNEL=6
LAB_NET_PREFIX=10.77

# The device's station interface and the phone's: `wlan0`, as on a real device, each in its own namespace.
LAB_DEVICE_IFACE=wlan0
LAB_PHONE_IFACE=wlan0

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() {
    lab_log "error: $*"
    exit 1
}

# Milliseconds since the epoch, for progress lines. Bash's own clock: every process started costs a few hundred
# milliseconds in a guest under software emulation, so the scripts avoid needless ones (builtins over tr, cat,
# date, awk).
lab_now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}

# Fields of one access point: lab_ap NAME sets ap_ssid ap_security ap_secret ap_visibility ap_octet ap_channel
# ap_iface; fails for an unknown name.
lab_ap() {
    while read -r ap_ssid ap_security ap_secret ap_visibility ap_octet ap_channel; do
        if [ "$ap_ssid" = "$1" ]; then
            ap_iface=${ap_ssid,,}
            ap_channel=${ap_channel:-$LAB_CHANNEL}
            [ "$ap_secret" = - ] && ap_secret=
            return 0
        fi
    done <<<"$LAB_WORLD"
    lab_die "no access point named '$1' (the world has: $(lab_ap_names))"
}

lab_ap_names() {
    local names=() name _
    while read -r name _; do names+=("$name"); done <<<"$LAB_WORLD"
    echo "${names[*]}"
}

# Polls COMMAND (a string for eval) every 0.2 s until it succeeds, or says what it waited for and returns 1 after
# SECONDS: lab_wait SECONDS WHAT COMMAND. The daemons here show readiness only through state they expose, so
# polling it is the event.
lab_wait() {
    local limit=$1 what=$2 command=$3 start=$SECONDS
    until eval "$command" >/dev/null 2>&1; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            lab_log "error: timed out after ${limit}s waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

# Starts the hostapd of access point NAME in namespace world and waits until it beacons.
lab_hostapd_start() {
    lab_ap "$1"
    local conf="$LAB_STATE/hostapd-$ap_iface.conf" pid="$LAB_STATE/hostapd-$ap_iface.pid"
    local log="$LAB_LOGS/hostapd-$ap_iface.log"
    rm -f "$pid"
    # -B: daemonise once the interface is set up; -t: timestamps; -f: log file (info level and up).
    ip netns exec world hostapd -B -t -P "$pid" -f "$log" "$conf" </dev/null >>"$log" 2>&1 \
        || lab_die "hostapd for $ap_ssid did not start (see $log)"
}

# Waits until the hostapd of access point NAME reports state ENABLED (beacons go out). Its control socket is a
# file, reachable from any network namespace.
lab_hostapd_wait() {
    lab_ap "$1"
    lab_wait 30 "access point $ap_ssid to be enabled (see $LAB_LOGS/hostapd-$ap_iface.log)" \
        "hostapd_cli -p '$LAB_STATE/hostapd' -i '$ap_iface' status | grep -qx state=ENABLED" || exit 1
}

# Stops the hostapd of access point NAME and waits for it to exit. Succeeds when it was not running.
lab_hostapd_stop() {
    lab_ap "$1"
    local pidfile="$LAB_STATE/hostapd-$ap_iface.pid" pid
    [ -s "$pidfile" ] || return 0
    pid=$(<"$pidfile")
    kill "$pid" 2>/dev/null || true
    lab_wait 10 "hostapd of $ap_ssid (pid $pid) to exit" "! kill -0 $pid" || exit 1
    rm -f "$pidfile"
}
