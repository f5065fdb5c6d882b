//! The provisioning access point of the NetworkManager backend: a second interface on the station's radio made
//! through nl80211, NetworkManager's hotspot on it at 192.168.4.1/24 with DHCP, while the station stays joined
//! to its network on the same channel. A phone (wpa_supplicant and busybox's DHCP client in its own namespace)
//! joins it with the passphrase and reaches the device across the simulated air.

use std::time::{Duration, Instant};

use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_backend_nm::{HotspotConfig, NetworkManager, NmConfig, ensure_ap_interface};
use wifiprov_testkit::harness::ROLE_VAR;
use wifiprov_testkit::lab::{self, Lab, Phone};
use wifiprov_testkit::process::{Process, Stream};

/// The role of this test binary, run in the device's namespace, that raises the access point.
pub(crate) const HOTSPOT_ROLE: &str = "lab-hotspot";
const AP_INTERFACE: &str = "uap0";
pub(crate) const SERVICE_NAME: &str = "PROV_LAB01";
pub(crate) const SERVICE_KEY: &str = "service-key-1";
const LIMIT: Duration = Duration::from_secs(120);

/// The device side, in its own process in the device's namespace (nl80211 and sysfs see only the namespace a
/// process is in): makes `uap0`, raises the access point, says `hotspot up`, and takes it down when its stdin
/// closes.
pub(crate) fn hotspot_role() {
    let station = std::env::var("WIFIPROV_LAB_STATION").expect("station interface");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let nm = NetworkManager::start(NmConfig { interface: Some(station.clone()), ..NmConfig::default() })
            .await
            .expect("NetworkManager backend");
        let made = ensure_ap_interface(&station, AP_INTERFACE).await.expect("access point interface");
        println!("interface made: {made}");
        let config = HotspotConfig {
            interface: AP_INTERFACE.to_owned(),
            ssid: Ssid::try_from(SERVICE_NAME).unwrap(),
            passphrase: Some(Passphrase::new(SERVICE_KEY.to_owned()).unwrap()),
            // The station is not joined through this backend here: name its channel (all lab networks use it).
            channel: Some(wifiprov_backend::Channel::new(6).unwrap()),
            address: "192.168.4.1".parse().unwrap(),
            prefix: 24,
        };
        let began = Instant::now();
        let hotspot = nm.start_hotspot(&config).await.expect("access point");
        println!("hotspot up after {:.1}s", began.elapsed().as_secs_f64());
        // Until the case closes stdin.
        let mut line = String::new();
        let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
        hotspot.stop().await.expect("access point stops");
        wifiprov_backend_nm::remove_ap_interface(AP_INTERFACE).await.expect("interface removed");
        println!("hotspot down");
    });
}

/// The role of this test binary, run in the phone's namespace, that browses for the provisioning service.
pub(crate) const MDNS_BROWSE_ROLE: &str = "lab-mdns-browse";

/// On the phone: browses for ESP's provisioning service over mDNS and prints the first one resolved as
/// `found ADDRESS:PORT`, or `nothing found` after 30 s.
pub(crate) fn mdns_browse_role() {
    let browser = mdns_sd::ServiceDaemon::new().expect("mDNS browser");
    let events = browser.browse(wifiprovd::mdns::SERVICE_TYPE).expect("browse");
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(event) = events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let mdns_sd::ServiceEvent::ServiceResolved(service) = event {
            for address in &service.addresses {
                println!("found {}:{}", address.to_ip_addr(), service.port);
            }
            let _ = browser.shutdown();
            return;
        }
    }
    println!("nothing found");
    let _ = browser.shutdown();
}

/// The access point comes up beside a joined station, on its channel; a phone joins it with the service key,
/// gets an address in 192.168.4.0/24 from the device and reaches 192.168.4.1; the station stays joined; the
/// access point goes when asked.
pub(crate) fn an_access_point_beside_the_station(lab: &Lab) {
    let home = lab.ap(lab::HOME_NET);
    lab.nmcli(&["device", "wifi", "list", "ifname", lab.device_iface(), "--rescan", "yes"], LIMIT);
    lab.nmcli(
        &[
            "device",
            "wifi",
            "connect",
            &home.ssid,
            "password",
            home.passphrase.as_deref().unwrap(),
            "ifname",
            lab.device_iface(),
        ],
        LIMIT,
    );

    let mut device = lab.device(std::env::current_exe().unwrap());
    device.env(ROLE_VAR, HOTSPOT_ROLE).env("WIFIPROV_LAB_STATION", lab.device_iface());
    let mut hotspot = Process::spawn("hotspot", device);
    let up = hotspot
        .wait_for_line(Stream::Stdout, LIMIT, |l| l.starts_with("hotspot up"))
        .unwrap_or_else(|| panic!("the access point did not come up\n{hotspot}\n{}", lab.logs()));
    eprintln!("{up}");

    let began = Instant::now();
    let phone = Phone::join(lab, SERVICE_NAME, Some(SERVICE_KEY), LIMIT);
    let address = phone.dhcp(lab).to_string();
    eprintln!("the phone joined {SERVICE_NAME} and got {address} in {:.1}s", began.elapsed().as_secs_f64());
    assert!(address.starts_with("192.168.4."), "the phone got {address}");
    let mut ping = lab.phone("busybox");
    ping.args(["ping", "-c", "3", "-w", "20", "192.168.4.1"]);
    lab.run_ok("ping 192.168.4.1", ping, Duration::from_secs(30));

    // The station is still on its network: the radio runs both on one channel.
    let status = lab.nmcli(&["-t", "-f", "DEVICE,STATE", "device"], Duration::from_secs(30));
    assert!(status.lines().any(|l| l == format!("{}:connected", lab.device_iface())), "{status}");

    hotspot.close_stdin();
    hotspot
        .wait_for_line(Stream::Stdout, LIMIT, |l| l == "hotspot down")
        .unwrap_or_else(|| panic!("the access point did not stop\n{hotspot}"));
    let active = lab.nmcli(&["-t", "-f", "NAME", "connection", "show", "--active"], Duration::from_secs(30));
    assert!(!active.contains("wifiprov-ap"), "the access point's profile is still active: {active}");
    let mut link = lab.device("ip");
    link.args(["link", "show", AP_INTERFACE]);
    assert!(!lab.run("ip link show", link, Duration::from_secs(30)).status.success(), "{AP_INTERFACE} is left");
    drop(phone);
}

/// Runs Espressif's client on the phone against the device's access point; checks its exit code and returns its
/// report.
fn esp_on_phone(lab: &Lab, command: &[&str], daemon: &crate::networkmanager::Daemon) -> serde_json::Value {
    let mut run = esp_from_phone(lab);
    run.args(command);
    // Each run costs about 30 s of Python under emulation, and some wait for the access point to come back.
    let finished = lab.run(&format!("esp_client.py {}", command.join(" ")), run, 2 * LIMIT);
    let report: serde_json::Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("esp_client.py printed no JSON ({e})\n{finished}\n{}", daemon.log()));
    assert!(finished.status.success(), "esp_client.py {command:?}: {report:#}\n{}\n{}", daemon.log(), lab.logs());
    report
}

const POP: &str = "lab-pop-1234";

/// Espressif's client on the phone, for the device's access point.
fn esp_from_phone(lab: &Lab) -> std::process::Command {
    let mut run = crate::networkmanager::esp_client(lab.phone(crate::networkmanager::python()));
    run.args(["--addr", "192.168.4.1:80", "--sec", "1", "--pop", POP]);
    run
}

/// `wifiprov ARGS` on the phone, for the device's access point.
fn wifiprov_from_phone(lab: &Lab, args: &[&str]) -> std::process::Command {
    let mut run = lab.phone(crate::networkmanager::wifiprov_program());
    run.args(["--device", "192.168.4.1:80", "--security", "1", "--pop", POP]).args(args);
    run
}

/// Provisions `ssid` with Espressif's client on the phone, patiently (slow polls, a long socket timeout), because
/// the device's access point goes away for a moment during the attempt. When the phone's connection does not
/// survive that (in the lab the device's end closed it), the phone waits to be back on the access point and asks
/// again on a new connection with `wifiprov status`, as an app would. Returns the outcome (`connected`,
/// `auth_error`, …; `failed` from `wifiprov status`), the device's address when connected, and whether the first
/// connection carried it.
fn provision_across_a_gap(
    lab: &Lab,
    phone: &Phone,
    daemon: &crate::networkmanager::Daemon,
    ssid: &str,
    passphrase: &str,
    expect: &str,
) -> (String, Option<String>, bool) {
    let mut run = esp_from_phone(lab);
    run.args(["--http-timeout", "90", "provision"])
        .args(["--timeout", "150", "--poll-interval", "2", "--ssid", ssid, "--passphrase", passphrase])
        .args(["--expect", expect]);
    let finished = lab.run(&format!("esp_client.py provision {ssid}"), run, 2 * LIMIT);
    let report: serde_json::Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("esp_client.py printed no JSON ({e})\n{finished}\n{}", daemon.log()));
    if finished.status.success() {
        let ip = report["status"]["connected"]["ip4_addr"].as_str().map(str::to_owned);
        return (report["outcome"].as_str().unwrap_or_default().to_owned(), ip, true);
    }
    eprintln!("the phone's connection broke while the access point was away ({}); asking again", report["error"]);
    phone.wait_joined(lab, LIMIT);
    let finished = lab.run("wifiprov status", wifiprov_from_phone(lab, &["status", "--json"]), LIMIT);
    let report: serde_json::Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("wifiprov printed no JSON ({e})\n{finished}\n{}", daemon.log()));
    let ip = report["ip"].as_str().map(str::to_owned);
    (report["state"].as_str().unwrap_or_default().to_owned(), ip, false)
}

/// `wifiprovd --transport softap` end to end, as a phone with Espressif's app does it: the device raises its
/// access point; the phone joins it with the service key, gets an address, finds the service over mDNS, lists
/// networks with wifiprov, and provisions through Espressif's client at 192.168.4.1:80: a wrong passphrase for
/// HomeNet first, read as an auth error, then a reset, then FarNet, on another channel, where the access point
/// follows the station. The device really joins FarNet, the phone reads Connected, and the access point goes
/// away once the phone has seen the success (ESP's auto-stop).
pub(crate) fn provisioning_over_the_softap(lab: &Lab) {
    let home = lab.ap(lab::HOME_NET);
    let state = tempfile::tempdir().unwrap();
    let service = ["--transport", "softap", "--service-name", SERVICE_NAME, "--service-key", SERVICE_KEY, "--mdns"];
    let began = Instant::now();
    let mut daemon = crate::networkmanager::Daemon::start(lab, state.path(), &service, false);
    let addr = daemon.wait_serving(lab, LIMIT);
    eprintln!("provisioning access point up at {addr} {:.1}s after start", began.elapsed().as_secs_f64());
    assert_eq!(addr, "192.168.4.1:80");

    let phone = Phone::join(lab, SERVICE_NAME, Some(SERVICE_KEY), LIMIT);
    let address = phone.dhcp(lab).to_string();
    assert!(address.starts_with("192.168.4."), "the phone got {address}");
    // Asked to, the device advertises the service over mDNS on its access point (and only there).
    let mut browse = lab.phone(std::env::current_exe().unwrap());
    browse.env(ROLE_VAR, MDNS_BROWSE_ROLE);
    let found = lab.run_ok("mDNS browse", browse, LIMIT);
    assert!(found.lines().any(|l| l == "found 192.168.4.1:80"), "{found}\n{}", daemon.log());
    // wifiprov's own client from the phone: the networks the device hears.
    let listed = lab.run_ok("wifiprov scan", wifiprov_from_phone(lab, &["scan", "--json"]), LIMIT);
    assert!(listed.contains(&format!("\"{}\"", lab::FAR_NET)), "{listed}\n{}", daemon.log());

    let wrong = ["provision", "--ssid", &home.ssid, "--passphrase", "not-the-passphrase", "--expect", "auth_error"];
    esp_on_phone(lab, &wrong, &daemon);
    esp_on_phone(lab, &["reset"], &daemon);

    // FarNet is on channel 1, the access point on 6 (where most networks are), and the radio runs both on one
    // channel: the access point moves to channel 1 for the join. The phone loses it for a moment and finds it
    // there; slow polls with a long socket timeout give it the time.
    let far = lab.ap(lab::FAR_NET);
    assert_ne!(far.channel, home.channel);
    let (outcome, ip, same_connection) =
        provision_across_a_gap(lab, &phone, &daemon, &far.ssid, far.passphrase.as_deref().unwrap(), "connected");
    let far_prefix = far.gateway.to_string().rsplit_once('.').unwrap().0.to_owned();
    assert_eq!(outcome, "connected", "{}", daemon.log());
    assert!(ip.is_some_and(|ip| ip.starts_with(&far_prefix)), "{}", daemon.log());
    eprintln!("read over the moved access point (on the first connection: {same_connection})");
    let log = daemon.log();
    assert!(log.contains("moving the access point to the channel of the network the station joins"), "{log}");
    eprintln!("the device joined {} on channel {}; the phone read it over the access point", far.ssid, far.channel);

    daemon.wait_log(lab, &["access point down"], LIMIT);
    daemon.wait_log(lab, &["removed the access point interface"], LIMIT);
    let active = lab.nmcli(&["-t", "-f", "NAME", "connection", "show", "--active"], Duration::from_secs(30));
    assert!(!active.contains("wifiprov-ap"), "the access point is still up: {active}");
    assert!(active.contains(&format!("wifiprov\\:{}", far.ssid)), "the station left {}: {active}", far.ssid);
    drop(phone);
}

/// The single-radio fallback, forced by naming the station's interface for the access point: the device scans,
/// then raises its access point on the station's interface. A phone joins it; scans answer with what was heard
/// before. A wrong passphrase takes the access point down for the attempt and raises it again, and the phone,
/// back on it, reads the auth error. The right one takes it down for good: the device
/// joins HomeNet, and the phone cannot read the success (why BLE suits such radios better).
pub(crate) fn provisioning_over_a_softap_on_the_station_interface(lab: &Lab) {
    let home = lab.ap(lab::HOME_NET);
    let state = tempfile::tempdir().unwrap();
    let station = lab.device_iface();
    let service = [
        "--transport",
        "softap",
        "--softap-interface",
        station,
        "--service-name",
        SERVICE_NAME,
        "--service-key",
        SERVICE_KEY,
    ];
    let mut daemon = crate::networkmanager::Daemon::start(lab, state.path(), &service, false);
    assert_eq!(daemon.wait_serving(lab, LIMIT), "192.168.4.1:80");
    daemon.wait_log(lab, &["runs on the station's own interface"], LIMIT);
    let phone = Phone::join(lab, SERVICE_NAME, Some(SERVICE_KEY), LIMIT);
    phone.dhcp(lab);
    esp_on_phone(lab, &["scan", "--expect-ssid", &home.ssid], &daemon);

    let began = Instant::now();
    let (outcome, _, same_connection) =
        provision_across_a_gap(lab, &phone, &daemon, &home.ssid, "not-the-passphrase", "auth_error");
    assert!(["auth_error", "failed"].contains(&outcome.as_str()), "{outcome}\n{}", daemon.log());
    eprintln!(
        "the phone read {outcome} {:.1}s after applying (on the first connection: {same_connection})",
        began.elapsed().as_secs_f64()
    );
    let log = daemon.log();
    assert!(log.contains("taking the access point down for the join"), "{log}");
    assert_eq!(log.matches("access point up").count(), 2, "raised again after the failed attempt:\n{log}");
    esp_on_phone(lab, &["reset"], &daemon);

    // The right passphrase: the phone loses the access point for good; the device joins.
    let mut right = esp_from_phone(lab);
    right.args(["--http-timeout", "90", "provision"]).args([
        "--ssid",
        &home.ssid,
        "--passphrase",
        home.passphrase.as_deref().unwrap(),
        "--timeout",
        "150",
    ]);
    let client = Process::spawn("esp_client.py provision", right);
    daemon.wait_log(lab, &["provisioned", &home.ssid], LIMIT);
    let active = lab.nmcli(&["-t", "-f", "NAME,DEVICE", "connection", "show", "--active"], Duration::from_secs(30));
    assert!(active.contains(&format!("wifiprov\\:{}:{station}", home.ssid)), "{active}");
    assert!(!active.contains("wifiprov-ap"), "the access point is up beside the station: {active}");
    drop(client);
    drop(phone);
}
