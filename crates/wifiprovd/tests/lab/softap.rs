//! The provisioning access point of the NetworkManager backend: a second interface on the station's radio made
//! through nl80211, NetworkManager's hotspot on it at 192.168.4.1/24 with DHCP, while the station stays joined
//! to its network on the same channel. A phone (wpa_supplicant and busybox's DHCP client in its own namespace)
//! joins it with the passphrase and reaches the device across the simulated air.

use std::io::Write as _;
use std::time::{Duration, Instant};

use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_backend_nm::{HotspotConfig, NetworkManager, NmConfig, ensure_ap_interface};
use wifiprov_testkit::harness::ROLE_VAR;
use wifiprov_testkit::lab::{self, Lab};
use wifiprov_testkit::process::{Process, Stream};

/// The role of this test binary, run in the device's namespace, that raises the access point.
pub(crate) const HOTSPOT_ROLE: &str = "lab-hotspot";
const AP_INTERFACE: &str = "uap0";
const SERVICE_NAME: &str = "PROV_LAB01";
const SERVICE_KEY: &str = "service-key-1";
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

/// wpa_supplicant on the phone's radio, joined to `ssid`; killed when dropped.
struct Phone {
    supplicant: Process,
    dir: tempfile::TempDir,
}

impl Phone {
    fn join(lab: &Lab, ssid: &str, passphrase: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("wpa.conf");
        let mut file = std::fs::File::create(&conf).unwrap();
        writeln!(
            file,
            "ctrl_interface={}\nnetwork={{\n ssid=\"{ssid}\"\n psk=\"{passphrase}\"\n}}",
            dir.path().display()
        )
        .unwrap();
        let mut command = lab.phone("wpa_supplicant");
        command.args(["-i", lab.phone_iface(), "-D", "nl80211", "-c"]).arg(&conf);
        let supplicant = Process::spawn("phone wpa_supplicant", command);
        let phone = Self { supplicant, dir };
        let deadline = Instant::now() + LIMIT;
        loop {
            let mut status = lab.phone("wpa_cli");
            status.arg("-p").arg(phone.dir.path()).args(["-i", lab.phone_iface(), "status"]);
            let shown = lab.run("wpa_cli status", status, Duration::from_secs(30));
            if shown.stdout.lines().any(|l| l == "wpa_state=COMPLETED") {
                return phone;
            }
            assert!(Instant::now() < deadline, "the phone did not join {ssid}\n{}\n{}", phone.supplicant, lab.logs());
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Asks for an address with busybox's DHCP client and returns it.
    fn dhcp(&self, lab: &Lab) -> String {
        let script = self.dir.path().join("udhcpc.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] && ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut udhcpc = lab.phone("busybox");
        udhcpc.args(["udhcpc", "-i", lab.phone_iface(), "-n", "-q", "-t", "10", "-s"]).arg(&script);
        lab.run_ok("udhcpc", udhcpc, LIMIT);
        let mut ip = lab.phone("ip");
        ip.args(["-4", "-o", "addr", "show", "dev", lab.phone_iface()]);
        let shown = lab.run_ok("ip addr", ip, Duration::from_secs(30));
        crate::address_in(&shown).map(|a| a.to_string()).unwrap_or_else(|| panic!("no address: {shown}"))
    }
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
    let phone = Phone::join(lab, SERVICE_NAME, SERVICE_KEY);
    let address = phone.dhcp(lab);
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
