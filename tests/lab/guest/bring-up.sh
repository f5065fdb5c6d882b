#!/usr/bin/env bash
# Brings the radio lab up inside the qemu guest (tests/lab/README.md): simulated radios (mac80211_hwsim) in three
# network namespaces, so every frame between them crosses the simulated air:
#
#   world   the access points of lib.sh's LAB_WORLD, each a real hostapd on a radio of its own, on channel 6 but
#           one, each with a dnsmasq serving DHCP on a /24 of its own
#   device  the device under test: a private system D-Bus, real NetworkManager managing wlan0 (wpa_supplicant
#           is D-Bus-activated by that bus, so it runs in this namespace too)
#   phone   one radio, up and idle (wlan0), for tests that play a phone joining the device's access point
#
# Returns once every access point beacons and NetworkManager reports wlan0 `disconnected` (ready to scan and
# join), after writing the facts the tests need as key=value lines to $LAB_STATE/lab.env (and a copy in
# $LAB_LOGS; no value holds a space, so a shell can source it). Progress goes to stderr; stdout stays empty.
#
# Environment:
#   LAB_STATE         runtime directory (default /run/wifiprov-lab). /run, not /tmp: the guest's /tmp is an
#                     overlay on the host's /tmp, so old host files show through; /run is a fresh tmpfs
#   LAB_LOGS          daemon logs (default $LAB_STATE/logs); point it into a --rwdir folder for the host to read
#   LAB_NM_MANAGED    interfaces NetworkManager manages (default: wlan0); everything else stays unmanaged
#   LAB_NM_LOG_LEVEL  NetworkManager's log level (default INFO; DEBUG and TRACE are slow under emulation)
#
# Undo with teardown.sh, which makes a new bring-up possible in the same guest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export LAB_STATE="${LAB_STATE:-/run/wifiprov-lab}"
export LAB_LOGS="${LAB_LOGS:-$LAB_STATE/logs}"
# shellcheck source=lib.sh
. "$here/lib.sh"

nm_managed="${LAB_NM_MANAGED:-$LAB_DEVICE_IFACE}"
nm_log_level="${LAB_NM_LOG_LEVEL:-INFO}"
started=$(lab_now_ms)
step() {
    local ms=$(($(lab_now_ms) - started))
    lab_log "$(printf '%3d.%01ds' $((ms / 1000)) $((ms % 1000 / 100))) $*"
}

[ "$(id -u)" = 0 ] || lab_die "bring-up needs root (it runs inside the lab's guest)"
[ ! -d /sys/module/mac80211_hwsim ] || lab_die "mac80211_hwsim is loaded already: is a lab up? (teardown.sh)"

run="$LAB_STATE/run"
rm -rf "$run"
mkdir -p "$run" "$LAB_STATE/hostapd" "$LAB_LOGS"

# --- radios ----------------------------------------------------------------------------------------------------
# Radio 0 is the device's, 1 the phone's, then one per access point in LAB_WORLD's order.
ap_names=$(lab_ap_names)
read -r -a ap_list <<<"$ap_names"
radios=$((2 + ${#ap_list[@]}))
# support_p2p_device=0: no extra P2P-Device per radio, which no test needs. (wpa_supplicant still makes its own
# p2p-dev-wlan0 on the device, which NetworkManager lists as an unmanaged wifi-p2p device.)
modprobe mac80211_hwsim radios="$radios" support_p2p_device=0
step "mac80211_hwsim: $radios radios"

# hwsim registers its radios in order, but phy numbers come from a global counter that a module reload does not
# reset (after a teardown the next lab gets phy7…, not phy0…), and wlanN takes the lowest free N. So radios are
# matched to interfaces through sysfs and ordered by phy number, never assumed to be phyN ↔ wlanN. The phys keep
# their kernel names (exported in lab.env); the interfaces get fixed names.
declare -A phy_of_index dev_of_index mac_of_index
indices=()
for dev in /sys/class/net/*; do
    [ -e "$dev/phy80211/name" ] || continue
    phy=$(<"$dev/phy80211/name")
    index=${phy#phy}
    phy_of_index[$index]=$phy
    dev_of_index[$index]=${dev##*/}
    mac_of_index[$index]=$(<"$dev/address")
    indices+=("$index")
done
mapfile -t indices < <(printf '%s\n' "${indices[@]}" | sort -n)
[ "${#indices[@]}" -eq "$radios" ] \
    || lab_die "expected $radios hwsim radios, found ${#indices[@]}: ${phy_of_index[*]:-none}"

# Radio number N (0-based) → its phy and interface, and where it goes: namespace, new interface name.
radio_phy() { echo "${phy_of_index[${indices[$1]}]}"; }
radio_dev() { echo "${dev_of_index[${indices[$1]}]}"; }
radio_mac() { echo "${mac_of_index[${indices[$1]}]}"; }
declare -A ns_of_radio name_of_radio
ns_of_radio[0]=device name_of_radio[0]=$LAB_DEVICE_IFACE
ns_of_radio[1]=phone name_of_radio[1]=$LAB_PHONE_IFACE
for i in "${!ap_list[@]}"; do
    lab_ap "${ap_list[$i]}"
    ns_of_radio[$((i + 2))]=world name_of_radio[$((i + 2))]=$ap_iface
done

ip -batch - <<<"netns add world
netns add device
netns add phone"
for ((i = 0; i < radios; i++)); do
    iw phy "$(radio_phy "$i")" set netns name "${ns_of_radio[$i]}"
done
# One `ip` per namespace: loopback up, interfaces renamed (the names are per namespace, so the device's and the
# phone's can both be wlan0), the access points' addresses.
declare -A batch
for ns in world device phone; do batch[$ns]="link set lo up"; done
for ((i = 0; i < radios; i++)); do
    ns=${ns_of_radio[$i]}
    batch[$ns]+=$'\n'"link set $(radio_dev "$i") name ${name_of_radio[$i]}"
done
batch[phone]+=$'\n'"link set $LAB_PHONE_IFACE up"
for name in "${ap_list[@]}"; do
    lab_ap "$name"
    batch[world]+=$'\n'"addr add $LAB_NET_PREFIX.$ap_octet.1/24 dev $ap_iface"
done
for ns in world device phone; do
    ip -n "$ns" -batch - <<<"${batch[$ns]}"
done
step "namespaces world, device, phone"

# --- device: a private system bus, NetworkManager --------------------------------------------------------------
bus_dir="$LAB_STATE/device-bus"
mkdir -p "$bus_dir/services" "$LAB_STATE/wpa_supplicant"
device_bus="unix:path=$bus_dir/socket"
# A system bus with the machine's own policies (so a call that a real device's bus refuses is refused here too),
# but its own socket and its own activation directory: wpa_supplicant must log to a file here, where Debian's
# service file sends it to syslog (-s), which the guest lacks. Activation forks from this bus, so wpa_supplicant
# runs in the device's namespace.
cat >"$bus_dir/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$device_bus</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$bus_dir/services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
</busconfig>
EOF
# With NetworkManager at DEBUG or TRACE, wpa_supplicant logs its debug messages too.
supplicant_debug=
case "${LAB_NM_LOG_LEVEL:-INFO}" in DEBUG | TRACE) supplicant_debug=-d ;; esac
cat >"$bus_dir/services/fi.w1.wpa_supplicant1.service" <<EOF
[D-BUS Service]
Name=fi.w1.wpa_supplicant1
Exec=/usr/sbin/wpa_supplicant -u -t $supplicant_debug -O $LAB_STATE/wpa_supplicant -P $run/wpa_supplicant.pid -f $LAB_LOGS/wpa_supplicant.log
User=root
EOF
ip netns exec device dbus-daemon --config-file="$bus_dir/bus.conf" --nofork --nopidfile --nosyslog \
    </dev/null >>"$LAB_LOGS/dbus-device.log" 2>&1 &
echo $! >"$run/dbus-device.pid"
lab_wait 20 "the device's D-Bus daemon (see $LAB_LOGS/dbus-device.log)" "[ -S '$bus_dir/socket' ]" || exit 1
step "device bus up: $device_bus"

nm_dir="$LAB_STATE/nm"
rm -rf "$nm_dir"
mkdir -p "$nm_dir/conf.d" "$nm_dir/system-connections"
unmanaged="*"
for iface in $nm_managed; do
    unmanaged="$unmanaged,except:interface-name:$iface"
done
# As close to Debian's NetworkManager on a device as a test allows: keyfile profiles in a directory of the lab's
# own, only the device's radios managed, no connectivity check (there is no internet in the world), no DNS or
# hostname changes to the guest. The DHCP client is named although internal is already Debian's default: the
# lab's DHCP must not depend on whether dhclient happens to be installed.
cat >"$nm_dir/NetworkManager.conf" <<EOF
[main]
plugins=keyfile
dhcp=internal
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false
no-auto-default=*

[keyfile]
path=$nm_dir/system-connections
unmanaged-devices=$unmanaged

[connectivity]
enabled=false

[logging]
level=$nm_log_level
EOF
# --debug: log to stderr (the log file) as well as syslog, which the guest lacks. Its own config directory (empty)
# keeps the host's /etc/NetworkManager/conf.d out; the system one (Debian's defaults) stays, as on a device.
#
# /sys read-only, in NetworkManager's own mount namespace (`ip netns exec` makes one per command): with /sys
# writable NetworkManager assumes udev runs and leaves every interface unmanaged until udev has announced it
# ("platform-init"). The guest does run udevd, but in the initial namespace: it never sees interfaces of another
# namespace, so wlan0 would wait forever. Read-only /sys is how NetworkManager knows it runs in a container
# without udev, and then takes interfaces as they come.
ip netns exec device sh -c 'mount -o remount,ro /sys && exec "$@"' sh \
    env DBUS_SYSTEM_BUS_ADDRESS="$device_bus" NetworkManager --no-daemon --debug \
    --config="$nm_dir/NetworkManager.conf" --config-dir="$nm_dir/conf.d" \
    --intern-config="$nm_dir/NetworkManager-intern.conf" --state-file="$nm_dir/NetworkManager.state" \
    --pid-file="$run/NetworkManager.pid" \
    </dev/null >>"$LAB_LOGS/NetworkManager.log" 2>&1 &
step "NetworkManager started"

# --- world: access points --------------------------------------------------------------------------------------
# Each access point: hostapd, and once it beacons a dnsmasq for its subnet. All of them at once, each in a
# subshell of its own: one by one they took 1-2 s each under emulation, mostly process start-up.
ap_bring_up() {
    lab_ap "$1"
    local conf="$LAB_STATE/hostapd-$ap_iface.conf" net="$LAB_NET_PREFIX.$ap_octet"
    {
        echo "interface=$ap_iface"
        echo "driver=nl80211"
        echo "ctrl_interface=$LAB_STATE/hostapd"
        echo "ssid=$ap_ssid"
        echo "hw_mode=g"
        echo "channel=$ap_channel"
        case "$ap_security" in
            wpa2) printf '%s\n' wpa=2 wpa_key_mgmt=WPA-PSK rsn_pairwise=CCMP "wpa_passphrase=$ap_secret" ;;
            # WPA3-Personal only: SAE, management frame protection required.
            wpa3) printf '%s\n' wpa=2 wpa_key_mgmt=SAE rsn_pairwise=CCMP "sae_password=$ap_secret" ieee80211w=2 ;;
            open) ;;
            *) lab_die "unknown security '$ap_security' for $ap_ssid" ;;
        esac
        if [ "$ap_visibility" = hidden ]; then echo "ignore_broadcast_ssid=1"; fi
    } >"$conf"
    lab_hostapd_start "$ap_ssid"
    lab_hostapd_wait "$ap_ssid"
    # --port=0: no DNS (a second dnsmasq would fail on port 53 anyway); --user=root: a guest needs no privilege
    # drop, and dnsmasq-base comes without a dnsmasq user. It offers itself as the router, so the device gets a
    # default route through the access point.
    ip netns exec world dnsmasq --conf-file=/dev/null --port=0 --user=root --group=root \
        --interface="$ap_iface" --except-interface=lo --bind-interfaces \
        --dhcp-range="$net.10,$net.99,255.255.255.0,1h" --dhcp-authoritative \
        --dhcp-leasefile="$run/dnsmasq-$ap_iface.leases" --pid-file="$run/dnsmasq-$ap_iface.pid" \
        --log-facility="$LAB_LOGS/dnsmasq-$ap_iface.log" --log-dhcp \
        </dev/null >>"$LAB_LOGS/dnsmasq-$ap_iface.log" 2>&1 \
        || lab_die "dnsmasq for $ap_ssid did not start (see $LAB_LOGS/dnsmasq-$ap_iface.log)"
}
ap_jobs=()
for name in "${ap_list[@]}"; do
    ap_bring_up "$name" &
    ap_jobs+=($!)
done
for job in "${ap_jobs[@]}"; do
    wait "$job" || lab_die "an access point did not come up (messages above)"
done
step "access points beaconing, dnsmasq serving each one's subnet"

# Ready when the station is `disconnected`: wpa_supplicant is attached and NetworkManager would scan and join.
# Before that it is `unavailable` (supplicant not ready yet) or missing.
lab_wait 90 "NetworkManager to report $LAB_DEVICE_IFACE disconnected (see $LAB_LOGS/NetworkManager.log)" \
    "ip netns exec device env DBUS_SYSTEM_BUS_ADDRESS='$device_bus' nmcli -t -f DEVICE,STATE device \
        | grep -qx '$LAB_DEVICE_IFACE:disconnected'" || exit 1
step "NetworkManager ready: $LAB_DEVICE_IFACE disconnected"

{
    echo "LAB_STATE=$LAB_STATE"
    echo "LAB_LOGS=$LAB_LOGS"
    echo "CHANNEL=$LAB_CHANNEL"
    echo "WORLD_NS=world"
    echo "DEVICE_NS=device"
    echo "DEVICE_IFACE=$LAB_DEVICE_IFACE"
    echo "DEVICE_PHY=$(radio_phy 0)"
    echo "DEVICE_MAC=$(radio_mac 0)"
    echo "DEVICE_BUS=$device_bus"
    echo "NM_CONFIG=$nm_dir/NetworkManager.conf"
    echo "NM_CONNECTIONS=$nm_dir/system-connections"
    echo "PHONE_NS=phone"
    echo "PHONE_IFACE=$LAB_PHONE_IFACE"
    echo "PHONE_PHY=$(radio_phy 1)"
    echo "PHONE_MAC=$(radio_mac 1)"
    echo "APS=$(IFS=,; echo "${ap_list[*]}")"
    for i in "${!ap_list[@]}"; do
        name=${ap_list[$i]}
        lab_ap "$name"
        echo "AP_${name}_IFACE=$ap_iface"
        echo "AP_${name}_PHY=$(radio_phy $((i + 2)))"
        echo "AP_${name}_BSSID=$(radio_mac $((i + 2)))"
        echo "AP_${name}_SECURITY=$ap_security"
        echo "AP_${name}_CHANNEL=$ap_channel"
        echo "AP_${name}_PASSPHRASE=$ap_secret"
        if [ "$ap_visibility" = hidden ]; then echo "AP_${name}_HIDDEN=yes"; else echo "AP_${name}_HIDDEN=no"; fi
        echo "AP_${name}_SUBNET=$LAB_NET_PREFIX.$ap_octet.0/24"
        echo "AP_${name}_GATEWAY=$LAB_NET_PREFIX.$ap_octet.1"
    done
} >"$LAB_STATE/lab.env"
cp "$LAB_STATE/lab.env" "$LAB_LOGS/lab.env"
step "up; facts in $LAB_STATE/lab.env"
