//! `wifiprovd --backend networkmanager` in the lab: the daemon drives the device's real NetworkManager, clients
//! talk to it over plain HTTP on the device's loopback (as a device already on some network would serve them).
//! Espressif's own client (esp-rainmaker-cli, `tests/interop/esp_client.py`) and `wifiprov` are the clients.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wifiprov_testkit::lab::{self, Lab};
use wifiprov_testkit::process::{Process, Stream};

const POP: &str = "lab-pop-1234";
/// Long enough for NetworkManager's own timeouts (25 s supplicant, 45 s DHCP) to end a join first.
const CLIENT: Duration = Duration::from_secs(120);

/// wifiprovd on the device, its log and its state directory.
pub(crate) struct Daemon {
    process: Process,
    /// `127.0.0.1:PORT` once provisioning is open.
    addr: Option<String>,
    /// Where its log is kept when it stops (the lab's log directory, which the host sees).
    log_file: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.log_file, self.log());
    }
}

impl Daemon {
    /// Starts wifiprovd on the device's NetworkManager with `state`, security 1, HTTP on loopback, and `extra`
    /// flags. Returns once it serves (`listening on …`), or at once with `wait_serving` false (saved networks
    /// are tried first).
    pub(crate) fn start(lab: &Lab, state: &Path, extra: &[&str], wait_serving: bool) -> Self {
        let mut command = lab.device(env!("CARGO_BIN_EXE_wifiprovd"));
        command
            .args(["--backend", "networkmanager", "--wifi-interface", lab.device_iface()])
            .args(["--listen", "127.0.0.1:0", "--security", "1", "--pop", POP, "--connect-delay-ms", "100"])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("RUST_LOG", "info,wifiprov_backend_nm=debug");
        let process = Process::spawn("wifiprovd", command);
        let log_file = (1..).map(|n| lab.log_dir().join(format!("wifiprovd-{n}.log"))).find(|p| !p.exists()).unwrap();
        let mut daemon = Self { process, addr: None, log_file };
        if wait_serving {
            daemon.wait_serving(lab, Duration::from_secs(60));
        }
        daemon
    }

    /// Waits for the provisioning service to (re)open and returns its address.
    pub(crate) fn wait_serving(&mut self, lab: &Lab, timeout: Duration) -> String {
        let line = self
            .process
            .wait_for_line(Stream::Stdout, timeout, |l| l.starts_with("listening on "))
            .unwrap_or_else(|| panic!("wifiprovd does not serve\n{}\n{}", self.process, lab.logs()));
        let addr = line.trim_start_matches("listening on ").trim().to_owned();
        self.addr = Some(addr.clone());
        addr
    }

    /// Waits for a line of the log (stderr) that contains every one of `words`, and returns it.
    pub(crate) fn wait_log(&self, lab: &Lab, words: &[&str], timeout: Duration) -> String {
        self.process
            .wait_for_line(Stream::Stderr, timeout, |l| words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("wifiprovd never logged {words:?}\n{}\n{}", self.process, lab.logs()))
    }

    pub(crate) fn log(&self) -> String {
        self.process.output(Stream::Stderr)
    }

    fn addr(&self) -> &str {
        self.addr.as_deref().expect("the daemon serves")
    }
}

/// The interop venv's python (made by `tests/interop/setup.sh`, which scripts/test runs before the tests).
pub(crate) fn python() -> PathBuf {
    let venv = std::env::var_os("WIFIPROV_INTEROP_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv"),
        |dir| Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir),
    );
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "Espressif's client is not installed at {}: run scripts/test (or tests/interop/setup.sh)",
        venv.display()
    );
    python
}

/// Runs one esp_client.py command against the daemon, on the device; checks its exit code and returns its report.
fn esp(lab: &Lab, daemon: &Daemon, command: &[&str], expect_ok: bool) -> Value {
    let mut run = esp_client(lab.device(python()));
    run.args(["--addr", daemon.addr(), "--sec", "1", "--pop", POP]).args(command);
    let finished = lab.run(&format!("esp_client.py {}", command.join(" ")), run, CLIENT);
    let report: Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("esp_client.py printed no JSON ({e})\n{finished}\n{}", daemon.log()));
    assert_eq!(
        finished.status.success(),
        expect_ok,
        "esp_client.py {command:?}: {report:#}\n{}\nwifiprovd:\n{}\n{}",
        finished.stderr,
        daemon.log(),
        lab.logs()
    );
    report
}

/// Runs `wifiprov ARGS --json` against the daemon, on the device; returns its exit code and JSON.
fn wifiprov(lab: &Lab, daemon: &Daemon, args: &[&str]) -> (i32, Value) {
    let mut run = lab.device(wifiprov_program());
    run.args(["--device", daemon.addr(), "--security", "1", "--pop", POP]).args(args).arg("--json");
    let finished = lab.run(&format!("wifiprov {}", args.join(" ")), run, CLIENT);
    let report = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("wifiprov printed no JSON ({e})\n{finished}\n{}", daemon.log()));
    (finished.status.code().unwrap_or(-1), report)
}

/// The workspace's `wifiprov` client, built beside the daemon by `cargo test --workspace`.
pub(crate) fn wifiprov_program() -> PathBuf {
    let program = Path::new(env!("CARGO_BIN_EXE_wifiprovd")).with_file_name("wifiprov");
    assert!(program.is_file(), "{} is missing: cargo build -p wifiprov (scripts/test builds it)", program.display());
    program
}

/// Espressif's client (`tests/interop/esp_client.py`) in the venv's Python, for `lab.device` or `lab.phone`.
pub(crate) fn esp_client(mut python: Command) -> Command {
    python.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/esp_client.py"));
    python
}

/// `wifiprov reset` or `wifiprov reprov`, which must succeed.
fn ctrl(lab: &Lab, daemon: &Daemon, command: &str) {
    let (code, report) = wifiprov(lab, daemon, &[command]);
    assert_eq!(code, 0, "wifiprov {command}: {report:#}\n{}", daemon.log());
}

/// Whether `address` is one the access point `ssid`'s dnsmasq hands out (`.10` to `.99` of its subnet).
fn in_subnet_of(lab: &Lab, ssid: &str, address: &str) -> bool {
    let Ok(address) = address.parse::<Ipv4Addr>() else { return false };
    let [a, b, c, d] = address.octets();
    let [ga, gb, gc, _] = lab.ap(ssid).gateway.octets();
    [a, b, c] == [ga, gb, gc] && (10..=99).contains(&d)
}

/// The names of the device's NetworkManager profiles (all, or the active ones).
fn profiles(lab: &Lab, active: bool) -> Vec<String> {
    let mut args = vec!["-t", "-f", "NAME", "connection", "show"];
    if active {
        args.push("--active");
    }
    // Terse output escapes the field separator: `wifiprov\:HomeNet`.
    lab.nmcli(&args, Duration::from_secs(30)).lines().map(|l| l.replace("\\:", ":")).collect()
}

/// Provisions through Espressif's client, expecting `expect`; returns its report. Prints how long the device took
/// from ApplyConfig to the final status (the client's own run is much longer: Python starts slowly in the guest).
fn provision(lab: &Lab, daemon: &Daemon, ssid: &str, passphrase: Option<&str>, expect: &str) -> Value {
    let mut command = vec!["provision", "--ssid", ssid, "--expect", expect, "--timeout", "100"];
    if let Some(passphrase) = passphrase {
        command.extend(["--passphrase", passphrase]);
    }
    let report = esp(lab, daemon, &command, true);
    let waited = report["timings_ms"]["wait_status"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    eprintln!("provision {ssid} ({expect}): the device answered in {waited:.1}s");
    report
}

/// Espressif's client provisions the NetworkManager backend through every outcome: a wrong passphrase is an
/// auth error, an unknown network is not found (without waiting for a timeout), and the WPA2, WPA3-only, hidden
/// and open networks are joined for real, each with an address from its own DHCP server.
pub(crate) fn espressif_client_provisions_networkmanager(lab: &Lab) {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(lab, state.path(), &["--no-auto-stop"], true);
    let home = lab.ap(lab::HOME_NET);

    provision(lab, &daemon, &home.ssid, Some("not-the-passphrase"), "auth_error");
    // Resets and reprovisioning requests go through wifiprov: each Python run costs half a minute in the guest.
    ctrl(lab, &daemon, "reset");
    provision(lab, &daemon, "NoSuchNet", Some("whatever-pass"), "not_found");
    // A probing scan did not name it; with HiddenNet in range it is tried as a hidden network, and
    // NetworkManager's "SSID not found" is the client's not_found.
    let log = daemon.log();
    assert!(log.contains("probed for the network ssid=NoSuchNet"), "{log}");
    ctrl(lab, &daemon, "reset");

    let joined = |ssid: &str, passphrase: Option<&str>| {
        let report = provision(lab, &daemon, ssid, passphrase, "connected");
        let ip = report["status"]["connected"]["ip4_addr"].as_str().unwrap_or_default().to_owned();
        assert!(in_subnet_of(lab, ssid, &ip), "{ssid} joined with {ip:?}, not an address of its network: {report:#}");
        let held = lab.device_ipv4().map(|a| a.to_string());
        assert_eq!(held.as_deref(), Some(ip.as_str()), "the device holds another address than the client was told");
        assert!(
            lab.dhcp_leases(ssid).lines().any(|l| l.contains(lab.device_mac()) && l.contains(&ip)),
            "{ssid}'s dnsmasq has no lease of {ip} for the device"
        );
        let ours: Vec<String> = profiles(lab, false).into_iter().filter(|p| p.starts_with("wifiprov:")).collect();
        assert_eq!(ours, [format!("wifiprov:{ssid}")], "one profile of ours, for {ssid}");
    };
    joined(&home.ssid, home.passphrase.as_deref());
    for ssid in [lab::WPA3_NET, lab::HIDDEN_NET, lab::OPEN_NET] {
        ctrl(lab, &daemon, "reprov");
        let ap = lab.ap(ssid);
        joined(ssid, ap.passphrase.as_deref());
    }
    // Nothing of ours is written to NetworkManager's disk: the passphrases live in wifiprov's store only.
    let on_disk: Vec<_> =
        std::fs::read_dir(lab.nm_connections_dir()).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(
        on_disk.is_empty(),
        "NetworkManager wrote profiles: {:?}",
        on_disk.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
}

/// A profile someone else made for the same network is never changed, deleted or used: neither while
/// wifiprovd joins that network, nor when a restarted wifiprovd clears away what an earlier run left.
pub(crate) fn a_profile_made_by_the_user_is_untouched(lab: &Lab) {
    let home = lab.ap(lab::HOME_NET);
    let passphrase = home.passphrase.as_deref().unwrap();
    lab.nmcli(
        &[
            "connection",
            "add",
            "type",
            "wifi",
            "con-name",
            "mine",
            "ifname",
            lab.device_iface(),
            "ssid",
            &home.ssid,
            "wifi-sec.key-mgmt",
            "wpa-psk",
            "wifi-sec.psk",
            passphrase,
            "connection.autoconnect",
            "no",
        ],
        Duration::from_secs(30),
    );
    let before = lab.nmcli(&["-t", "--show-secrets", "connection", "show", "mine"], Duration::from_secs(30));

    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(lab, state.path(), &["--no-auto-stop"], true);
    let (code, added) = wifiprov(lab, &daemon, &["networks", "add", "--ssid", &home.ssid, "--passphrase", passphrase]);
    assert_eq!(code, 0, "{added:#}\n{}", daemon.log());
    assert!(in_subnet_of(lab, &home.ssid, added["ip"].as_str().unwrap_or_default()), "{added:#}");
    let active = profiles(lab, true);
    assert!(active.contains(&format!("wifiprov:{}", home.ssid)), "our profile is the active one: {active:?}");
    drop(daemon);

    // A restart removes the profile the killed run left behind, and only that one.
    let restarted = Daemon::start(lab, state.path(), &[], false);
    restarted.wait_log(lab, &["joined", &home.ssid], Duration::from_secs(90));
    let after = lab.nmcli(&["-t", "--show-secrets", "connection", "show", "mine"], Duration::from_secs(30));
    assert_eq!(before, after, "the user's profile changed");
    let names: Vec<String> = profiles(lab, false);
    assert_eq!(
        names.iter().filter(|p| p.starts_with("wifiprov:")).count(),
        1,
        "one profile of ours after the restart: {names:?}"
    );
}

/// At start, a saved network whose access point is off is skipped after one scan (not tried until its attempt
/// times out), and the next one is joined; when that link is lost, provisioning reopens after the grace period,
/// on the device's own access point, which a phone joins.
pub(crate) fn boot_skips_networks_out_of_range_and_reopens_after_a_lost_link(lab: &Lab) {
    let home = lab.ap(lab::HOME_NET);
    let backup = lab.ap(lab::BACKUP_NET);
    let state = tempfile::tempdir().unwrap();
    {
        let daemon = Daemon::start(lab, state.path(), &["--no-auto-stop"], true);
        // Saved in this order, HomeNet first: the device would try it first.
        for (ap, priority) in [(backup, None), (home, Some("0"))] {
            let passphrase = ap.passphrase.as_deref().unwrap();
            let mut args = vec!["networks", "add", "--ssid", &ap.ssid, "--passphrase", passphrase];
            args.extend(priority.map(|p| ["--priority", p]).into_iter().flatten());
            let (code, added) = wifiprov(lab, &daemon, &args);
            assert_eq!(code, 0, "{added:#}\n{}", daemon.log());
        }
    }
    lab.ap_down(&home.ssid);
    // A network heard up to 5 s before a scan is asked for still counts as in range (a scan under way then takes
    // the request in; NetworkManager's LastSeen has whole seconds): switch it off well before the daemon's scan.
    std::thread::sleep(Duration::from_secs(7));

    let began = Instant::now();
    let softap = [
        "--transport",
        "softap",
        "--service-name",
        crate::softap::SERVICE_NAME,
        "--service-key",
        crate::softap::SERVICE_KEY,
    ];
    let mut args = vec!["--reopen-grace", "5"];
    args.extend(softap);
    let mut daemon = Daemon::start(lab, state.path(), &args, false);
    daemon.wait_log(lab, &["joined", &backup.ssid], Duration::from_secs(90));
    let took = began.elapsed().as_secs_f64();
    eprintln!("start to joined {} with {} off: {took:.1}s", backup.ssid, home.ssid);
    let log = daemon.log();
    assert!(!log.contains(&format!("trying saved network ssid={}", home.ssid)), "{} was tried:\n{log}", home.ssid);
    assert!(log.contains("not in range"), "the skip is logged:\n{log}");

    lab.ap_down(&backup.ssid);
    let lost = Instant::now();
    daemon.wait_log(lab, &["link lost"], Duration::from_secs(90));
    eprintln!("link loss noticed after {:.1}s", lost.elapsed().as_secs_f64());
    let addr = daemon.wait_serving(lab, Duration::from_secs(90));
    eprintln!("provisioning reopened at {addr} {:.1}s after the access point went", lost.elapsed().as_secs_f64());
    // On the device's own access point, which a phone joins.
    assert_eq!(addr, "192.168.4.1:80");
    let phone =
        lab::Phone::join(lab, crate::softap::SERVICE_NAME, Some(crate::softap::SERVICE_KEY), Duration::from_secs(120));
    let address = phone.dhcp(lab);
    assert_eq!(address.octets()[..3], [192, 168, 4], "the phone got {address}");
    eprintln!("a phone joined the reopened access point {:.1}s after the network went", lost.elapsed().as_secs_f64());
}

/// Start-up errors say what to fix, and the daemon exits instead of serving a radio it cannot drive.
pub(crate) fn start_up_errors_say_what_to_fix(lab: &Lab) {
    let state = tempfile::tempdir().unwrap();
    let start = |command: &mut std::process::Command, interface: &str| {
        command
            .args(["--backend", "networkmanager", "--wifi-interface", interface, "--listen", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(state.path());
    };
    let refused = |command: std::process::Command, expected: &str| {
        let finished = lab.run("wifiprovd", command, Duration::from_secs(60));
        assert!(!finished.status.success(), "wifiprovd started:\n{finished}");
        assert!(finished.stderr.contains(expected), "expected {expected:?}:\n{finished}");
    };
    let daemon = env!("CARGO_BIN_EXE_wifiprovd");

    let mut missing = lab.device(daemon);
    start(&mut missing, "wlan9");
    refused(missing, "there is no network interface wlan9");
    let mut not_wifi = lab.device(daemon);
    start(&mut not_wifi, "lo");
    refused(not_wifi, "lo is not a Wi-Fi device");

    // A bus that NetworkManager is not on: a private one in the phone's namespace.
    let mut bus = lab.phone("dbus-daemon");
    bus.args(["--session", "--nofork", "--nopidfile", "--print-address=1"]);
    let bus = Process::spawn("dbus-daemon", bus);
    let address = bus
        .wait_for_line(Stream::Stdout, Duration::from_secs(30), |l| l.starts_with("unix:"))
        .unwrap_or_else(|| panic!("no private bus\n{bus}"));
    let mut no_nm = lab.phone(daemon);
    no_nm.env("DBUS_SYSTEM_BUS_ADDRESS", address.trim());
    start(&mut no_nm, "wlan0");
    refused(no_nm, "NetworkManager is not running");
    let mut no_bus = lab.phone(daemon);
    no_bus.env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    start(&mut no_bus, "wlan0");
    refused(no_bus, "cannot connect to the D-Bus system bus");
}
