//! The radio lab (tests/lab/README.md): real NetworkManager, wpa_supplicant, hostapd and dnsmasq on simulated
//! radios (`mac80211_hwsim`) in a qemu guest, because the host has no Wi-Fi.
//!
//! One test, `lab`, boots the guest once and runs this same binary in there as root (role
//! `wifiprov_testkit::lab::GUEST_ROLE`); inside, `main` brings the lab up once and runs the cases of [`CASES`]
//! one after the other, each reported by name. Select cases with `WIFIPROV_LAB_CASES=name,…` (substrings).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use wifiprov_testkit::harness;
use wifiprov_testkit::lab::{self, Boot, Case, GUEST_ROLE, Lab, Visibility};

#[path = "lab/networkmanager.rs"]
mod networkmanager;
#[path = "lab/softap.rs"]
mod softap;

/// The cases, in the order they run in the guest.
const CASES: &[Case] = &[
    ("nm_joins_home_net_and_refuses_a_wrong_passphrase", nm_joins_home_net_and_refuses_a_wrong_passphrase),
    ("espressif_client_provisions_networkmanager", networkmanager::espressif_client_provisions_networkmanager),
    ("a_profile_made_by_the_user_is_untouched", networkmanager::a_profile_made_by_the_user_is_untouched),
    ("start_up_errors_say_what_to_fix", networkmanager::start_up_errors_say_what_to_fix),
    ("an_access_point_beside_the_station", softap::an_access_point_beside_the_station),
    ("provisioning_over_the_softap", softap::provisioning_over_the_softap),
    (
        "provisioning_over_a_softap_on_the_station_interface",
        softap::provisioning_over_a_softap_on_the_station_interface,
    ),
    (
        "boot_skips_networks_out_of_range_and_reopens_after_a_lost_link",
        networkmanager::boot_skips_networks_out_of_range_and_reopens_after_a_lost_link,
    ),
];

/// How long one `nmcli` join may take: NetworkManager itself gives up after 90 s without an address.
const JOIN: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    match harness::role().as_deref() {
        Some(GUEST_ROLE) => lab::run_cases(CASES),
        Some(softap::HOTSPOT_ROLE) => {
            softap::hotspot_role();
            ExitCode::SUCCESS
        }
        Some(softap::MDNS_BROWSE_ROLE) => {
            softap::mdns_browse_role();
            ExitCode::SUCCESS
        }
        Some(other) => panic!("unknown role {other}"),
        None => harness::run(&[("lab", lab)]),
    }
}

/// The host's one test: boot the guest, run every case in there, fail if any did.
fn lab() {
    // The eight cases take 6 to 10 minutes under emulation (phones joining the device's access point vary most;
    // BENCHMARKS.md), past the guest's default 10-minute deadline on a loaded machine.
    Boot::new(GUEST_ROLE).timeout(Duration::from_secs(1200)).run().assert_passed();
}

// ---------------------------------------------------------------------------------------------------------------
// Cases (inside the guest)

/// The lab works end to end with NetworkManager's own client: a scan sees the world's networks (the hidden one
/// without its name), a join with the right passphrase gets an address from HomeNet's dnsmasq and reaches the
/// access point across the simulated air, and a wrong passphrase is refused.
fn nm_joins_home_net_and_refuses_a_wrong_passphrase(lab: &Lab) {
    let iface = lab.device_iface();
    let home = lab.ap(lab::HOME_NET);

    // `--rescan yes` waits for a fresh scan. Right after start NetworkManager knows no network at all.
    let began = Instant::now();
    let seen = lab.nmcli(&["-t", "-f", "SSID", "device", "wifi", "list", "ifname", iface, "--rescan", "yes"], JOIN);
    eprintln!("scan: {:.1}s", began.elapsed().as_secs_f64());
    let seen: Vec<&str> = seen.lines().collect();
    for ap in lab.aps() {
        let listed = seen.contains(&ap.ssid.as_str());
        match ap.visibility {
            Visibility::Broadcast => assert!(listed, "the scan missed {}: {seen:?}", ap.ssid),
            Visibility::Hidden => assert!(!listed, "the scan named hidden {}: {seen:?}", ap.ssid),
        }
    }

    let began = Instant::now();
    let passphrase = home.passphrase.as_deref().unwrap();
    lab.nmcli(&["device", "wifi", "connect", &home.ssid, "password", passphrase, "ifname", iface], JOIN);
    eprintln!("join {} with the right passphrase: {:.1}s", home.ssid, began.elapsed().as_secs_f64());

    // An address in HomeNet's subnet, from its dnsmasq (.10 to .99)...
    let address = lab.device_ipv4().unwrap_or_else(|| panic!("no IPv4 address on {iface}\n{}", lab.logs()));
    let [a, b, c, d] = address.octets();
    let [ga, gb, gc, _] = home.gateway.octets();
    assert!(
        [a, b, c] == [ga, gb, gc] && (10..=99).contains(&d),
        "{iface} got {address}, not an address of {} ({})",
        home.ssid,
        home.subnet
    );
    // ...that dnsmasq handed out to the device's radio...
    let leases = lab.dhcp_leases(&home.ssid);
    assert!(
        leases.lines().any(|l| l.contains(lab.device_mac()) && l.contains(&address.to_string())),
        "HomeNet's dnsmasq has no lease of {address} for {}: {leases}",
        lab.device_mac()
    );
    // ...and the access point answers across the air.
    let mut ping = lab.device("busybox");
    ping.args(["ping", "-c", "3", "-w", "20", &home.gateway.to_string()]);
    let began = Instant::now();
    lab.run_ok("ping", ping, Duration::from_secs(30));
    eprintln!("{address} pinged {}: {:.1}s", home.gateway, began.elapsed().as_secs_f64());

    // A wrong passphrase for another network: refused. NetworkManager 1.42 says the secrets were "required, but
    // not provided" (device state reason 7, no secrets) after the 4-way handshake fails.
    let backup = lab.ap(lab::BACKUP_NET);
    let mut connect = lab.device("nmcli");
    connect.args(["device", "wifi", "connect", &backup.ssid, "password", "not-the-passphrase", "ifname", iface]);
    let began = Instant::now();
    let refused = lab.run("nmcli wrong passphrase", connect, JOIN);
    eprintln!("join {} with a wrong passphrase: refused after {:.1}s", backup.ssid, began.elapsed().as_secs_f64());
    assert!(!refused.status.success(), "a wrong passphrase joined {}\n{refused}", backup.ssid);
    assert!(
        refused.stderr.contains("Secrets were required, but not provided"),
        "a wrong passphrase failed for another reason than the secrets\n{refused}\n{}",
        lab.logs()
    );
}
