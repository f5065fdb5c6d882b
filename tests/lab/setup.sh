#!/usr/bin/env bash
# Get the radio lab ready (tests/lab/README.md): the Debian packages that the guest runs (a kernel with
# mac80211_hwsim, qemu, hostapd, wpa_supplicant, NetworkManager, dnsmasq, iw, busybox, dbus, iproute2), and a
# Python venv with virtme-ng. Prints the path of its `vng` executable (the only line on stdout; progress goes to
# stderr):
#
#   VNG=$(tests/lab/setup.sh) && "$VNG" --help
#
# The tests find it at the same place (crates/testkit, module lab).
#
# As root, missing packages are installed with apt-get; otherwise the script says what to install and exits 2.
#
# Environment:
#   WIFIPROV_LAB_VENV    venv directory (default: target/lab-venv; a relative path is taken from the repo root)
#   WIFIPROV_LAB_PYTHON  interpreter used to create the venv (default: python3 on PATH; needs >= 3.10)
#
# Idempotent: with everything in place it only checks (well under a second).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${WIFIPROV_LAB_VENV:-target/lab-venv}"
case "$venv" in
    /*) ;;
    *) venv="$root/$venv" ;;
esac

log() { printf 'lab-setup: %s\n' "$*" >&2; }

# Debian package → a file it installs (checked with `test -e`, so a package that is present but broken shows).
packages=(
    "qemu-system-x86:/usr/bin/qemu-system-x86_64"
    "hostapd:/usr/sbin/hostapd"
    "wpasupplicant:/usr/sbin/wpa_supplicant"
    "network-manager:/usr/sbin/NetworkManager"
    "dnsmasq-base:/usr/sbin/dnsmasq"
    "iw:/usr/sbin/iw"
    "busybox-static:/bin/busybox"
    "dbus:/usr/bin/dbus-daemon"
    "iproute2:/usr/sbin/ip"
)

# The newest installed kernel image that ships mac80211_hwsim (its path moved from drivers/net/wireless/ to
# drivers/net/wireless/virtual/ in 6.7; modules may be compressed). Prints the version, or nothing.
hwsim_kernel() {
    local image ver
    for image in $(ls -1v /boot/vmlinuz-* 2>/dev/null | tac); do
        ver="${image#/boot/vmlinuz-}"
        if compgen -G "/lib/modules/$ver/kernel/drivers/net/wireless/mac80211_hwsim.ko*" >/dev/null \
            || compgen -G "/lib/modules/$ver/kernel/drivers/net/wireless/virtual/mac80211_hwsim.ko*" >/dev/null; then
            printf '%s\n' "$ver"
            return 0
        fi
    done
}

missing=()
for entry in "${packages[@]}"; do
    [ -e "${entry#*:}" ] || missing+=("${entry%%:*}")
done
[ -n "$(hwsim_kernel)" ] || missing+=("linux-image-amd64")

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]}"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        log "error: the radio lab needs these Debian packages: ${missing[*]}"
        log "       as root: apt-get install ${missing[*]}"
        exit 2
    fi
fi

kernel="$(hwsim_kernel)"
if [ -z "$kernel" ]; then
    log "error: no /boot/vmlinuz-* with a mac80211_hwsim module under /lib/modules/<version>/ (linux-image-amd64)"
    exit 2
fi
if [ ! -r "/boot/vmlinuz-$kernel" ]; then
    # Debian installs the image mode 0600; qemu must read it.
    log "error: /boot/vmlinuz-$kernel is not readable by $(id -un); the lab boots it (run as root)"
    exit 2
fi
log "guest kernel: /boot/vmlinuz-$kernel"

"$here/../pinned-venv.sh" lab-setup "$here/requirements.txt" "$venv" "${WIFIPROV_LAB_PYTHON:-python3}" 3.10 '
import os, sys
import virtme_ng.run, virtme.commands.run
assert os.access(os.path.join(sys.prefix, "bin", "vng"), os.X_OK)
'
printf '%s\n' "$venv/bin/vng"
