//! `wifiprov --ble NAME …` end to end over BlueZoo (a user-space mock of BlueZ) on a private D-Bus daemon: the
//! device is wifiprovd's provisioning service (security 2, the fast simulated radio, a custom endpoint) serving
//! BLE on adapter `hci1`, and the binary finds it from the default adapter, `hci0`, or from `hci2`.
//!
//! A test binary of its own, with its own `main`: the device must reach the private bus through
//! `DBUS_SYSTEM_BUS_ADDRESS`, which a process may not set for itself without `unsafe`, so it runs as a child
//! process of this binary in the role `main` reads from the environment (see `wifiprov_testkit::harness`).
//! BlueZoo cannot connect the same two adapters twice, so each test gets a fresh BlueZoo and each run of the
//! binary in a test comes from another adapter.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use wifiprov_backend::Ssid;
use wifiprov_manager::networks::{NetworkList, SavedNetwork};
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::endpoint::{GuessLimit, HandlerError, SessionId};
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::{DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier};
use wifiprov_store::NetworkStore;
use wifiprov_testkit::bluezoo::{Bluezoo, adapter_address};
use wifiprov_testkit::harness::{self, ROLE_VAR};
use wifiprov_testkit::process::{Process, Stream};
use wifiprov_testkit::{FAST_SCENARIO, SeededRandom};
use wifiprov_transport_ble::{BleConfig, bluer};
use wifiprovd::frontend::{BleFrontend, Frontend};
use wifiprovd::guessing::Guessing;
use wifiprovd::service::{ProvisioningService, ServiceConfig};

const NAME: &str = "PROV_C11B1E";
const USER: &str = "wifiprov";
const PASSWORD: &str = "cli-ble-pw-93k";
/// The device's adapter; the binary uses the default one, `hci0`, or `hci2`.
const DEVICE_ADAPTER: &str = "hci1";
/// A network of the fast scenario, and its passphrase.
const SSID: &str = "home";
const PASSPHRASE: &str = "correct-horse";

fn main() -> ExitCode {
    match harness::role().as_deref() {
        Some("device") => device_role(false, false),
        Some("offline-device") => device_role(true, false),
        Some("strict-device") => device_role(false, true),
        Some(other) => panic!("unknown role {other}"),
        None => harness::run(&[
            ("caps_json", caps_json),
            ("scan_json_pages_over_ble", scan_json_pages_over_ble),
            ("custom_endpoint", custom_endpoint),
            ("provision_then_list_networks_from_another_adapter", provision_then_list_networks_from_another_adapter),
            ("wrong_password_is_a_security_failure", wrong_password_is_a_security_failure),
            ("a_locked_out_device_says_so_over_ble", a_locked_out_device_says_so_over_ble),
            ("provisioning_reopens_over_ble_when_offline", provisioning_reopens_over_ble_when_offline),
            ("no_such_device_is_a_transport_failure", no_such_device_is_a_transport_failure),
        ]),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests (the parent process)

fn caps_json() {
    let bench = Bench::start(2);
    let run = bench.wifiprov(0, &["caps", "--json"]);
    run.expect(0);
    let json = run.json();
    assert_eq!(json["ok"], true, "{run}");
    assert_eq!(json["device"], NAME);
    assert_eq!(json["sec_ver"], 2);
    assert_eq!(json["security"], 2);
    assert!(json["capabilities"].as_array().unwrap().iter().any(|c| c == "wifi_scan"), "{run}");
}

fn scan_json_pages_over_ble() {
    let bench = Bench::start(2);
    let run = bench.wifiprov(0, &[&creds(), &["scan", "--json"][..]].concat());
    run.expect(0);
    let json = run.json();
    let networks = json["networks"].as_array().unwrap();
    // The fast scenario: five visible networks, one hidden.
    let ssids: Vec<&str> = networks.iter().map(|n| n["ssid"].as_str().unwrap()).collect();
    assert_eq!(ssids, ["home", "office", "flaky", "cafe", "attic"], "strongest first\n{run}");
    // Five entries in pages of four: start, status, and two result pages.
    let results = bench.device.output(Stream::Stderr).matches("endpoint=prov-scan").count();
    assert!(results >= 4, "start, status and two result pages expected\n{run}");
}

fn custom_endpoint() {
    let bench = Bench::start(2);
    let run = bench.wifiprov(0, &[&creds(), &["custom", "custom-data", "hello over ble", "--json"][..]].concat());
    run.expect(0);
    assert_eq!(run.json()["reply"], "got:hello over ble", "{run}");
}

fn provision_then_list_networks_from_another_adapter() {
    let bench = Bench::start(3);
    let provision = ["provision", "--ssid", SSID, "--passphrase", PASSPHRASE, "--json"];
    let run = bench.wifiprov(0, &[&creds(), &provision[..]].concat());
    run.expect(0);
    let json = run.json();
    assert_eq!(json["outcome"], "connected", "{run}");
    assert_eq!(json["ssid"], SSID, "{run}");
    assert!(!run.to_string().contains(PASSPHRASE), "the passphrase shows up in the output\n{run}");
    // A second client, on a link of its own: the network was saved.
    let run = bench.wifiprov(2, &[&creds(), &["--ble-adapter", "hci2", "networks", "list", "--json"][..]].concat());
    run.expect(0);
    let saved = run.json()["networks"].as_array().unwrap().clone();
    assert_eq!(saved.len(), 1, "{run}");
    assert_eq!(saved[0]["ssid"], SSID, "{run}");
    assert_eq!(saved[0]["connected"], true, "{run}");
}

fn wrong_password_is_a_security_failure() {
    let bench = Bench::start(3);
    let run = bench.wifiprov(0, &["--sec2-username", USER, "--sec2-password", "wrong-password", "status"]);
    run.expect(4);
    assert!(run.stderr.contains("the device refused the security 2 handshake"), "{run}");
    // The device goes on serving the next client (from another adapter: see the file's documentation).
    let run = bench.wifiprov(2, &[&creds(), &["--ble-adapter", "hci2", "status", "--json"][..]].concat());
    run.expect(0);
}

fn a_locked_out_device_says_so_over_ble() {
    // The strict device locks handshakes out after its first wrong proof (see [`device_role`]).
    let bench = Bench::start_role(3, "strict-device");
    let run = bench.wifiprov(0, &["--sec2-username", USER, "--sec2-password", "wrong-password", "status"]);
    run.expect(4);
    let run = bench.wifiprov(2, &[&creds(), &["--ble-adapter", "hci2", "status"][..]].concat());
    run.expect(4);
    assert!(run.stderr.contains("refuses handshakes for now after repeated wrong proofs"), "{run}");
    assert!(bench.device.output(Stream::Stderr).contains("refusing handshakes for 600 s"), "{run}");
}

fn provisioning_reopens_over_ble_when_offline() {
    // The device's only saved network is out of range: the connection policy tries it, gives up and opens
    // provisioning on its BLE fallback (Bench::start waits until it advertises).
    let bench = Bench::start_offline(2);
    let log = bench.device.output(Stream::Stderr);
    let reopened = log.find("offline: reopening provisioning");
    assert!(reopened.is_some_and(|at| at < log.find("serving protocomm over ble").unwrap()), "{log}");
    let provision = ["provision", "--ssid", SSID, "--passphrase", PASSPHRASE, "--json"];
    let run = bench.run(0, &[&creds(), &provision[..]].concat());
    run.expect(0);
    assert_eq!(run.json()["outcome"], "connected", "{run}");
    // Then provisioning ends as after any success (auto-stop, a second after the client saw the result): the
    // BLE service is withdrawn.
    let stopped = bench.device.wait_for_line(Stream::Stderr, Duration::from_secs(30), |l| l.ends_with(" stopped"));
    assert!(
        stopped.is_some(),
        "the BLE service stays up after the device got online
{run}"
    );
}

fn no_such_device_is_a_transport_failure() {
    let zoo = Bluezoo::start(2);
    let run = wifiprov(&zoo, &["--ble", "PROV_ABSENT", "--connect-timeout", "2", "caps", "--json"]);
    run.expect(3);
    let message = run.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(r#"no device named "PROV_ABSENT" advertising found within 2"#), "{message}");
}

fn creds() -> Vec<&'static str> {
    vec!["--sec2-username", USER, "--sec2-password", PASSWORD]
}

/// A BlueZoo with the device serving on [`DEVICE_ADAPTER`].
struct Bench {
    device: Process,
    // Dropped last: the device's bus.
    zoo: Bluezoo,
}

impl Bench {
    /// A fresh BlueZoo with `adapters` adapters and the device on `hci1`, advertising.
    fn start(adapters: usize) -> Self {
        Self::start_role(adapters, "device")
    }

    /// Like [`Bench::start`], for a device that starts offline (see [`device_role`]) and advertises once the
    /// connection policy reopens provisioning.
    fn start_offline(adapters: usize) -> Self {
        Self::start_role(adapters, "offline-device")
    }

    fn start_role(adapters: usize, role: &str) -> Self {
        let zoo = Bluezoo::start(adapters);
        let mut command = zoo.command(std::env::current_exe().unwrap());
        command
            .env(ROLE_VAR, role)
            .env("RUST_LOG", "wifiprov_transport_ble=debug,wifiprovd=info,wifiprov_manager=info,warn")
            .env("RUST_BACKTRACE", "1");
        let device = Process::spawn("device", command);
        // Advertising once this is logged, so the binary's scan finds it at once.
        let up =
            device.wait_for_line(Stream::Stderr, Duration::from_secs(30), |l| l.contains("serving protocomm over ble"));
        assert!(up.is_some(), "the device did not start\n{device}{}", zoo.log());
        Self { device, zoo }
    }

    /// `wifiprov --ble NAME ARGS` from adapter `hci{adapter}` (the default adapter unless ARGS name another);
    /// checks that the binary ended its link and printed no secret.
    fn wifiprov(&self, adapter: usize, args: &[&str]) -> Run {
        // Lines logged before this run must not satisfy the wait below.
        let before = self.device.output(Stream::Stderr).matches(&self.closed(adapter)).count();
        let Run { output, .. } = self.run(adapter, args);
        // The binary disconnects before it exits (BlueZ would keep the link up otherwise); the device notices
        // and closes the link's session.
        let closed = self.closed(adapter);
        let seen = (0..100).any(|_| {
            let now = self.device.output(Stream::Stderr).matches(&closed).count();
            now > before || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        let run = Run { output, device: self.device.to_string() };
        assert!(seen, "the binary left its BLE link up\n{run}");
        assert!(!run.to_string().contains(PASSWORD), "the password shows up in the output\n{run}");
        run
    }

    /// `wifiprov --ble NAME ARGS`, without the checks of [`Bench::wifiprov`].
    fn run(&self, _adapter: usize, args: &[&str]) -> Run {
        let mut all = vec!["--ble", NAME];
        all.extend_from_slice(args);
        let output = wifiprov(&self.zoo, &all);
        Run { output, device: self.device.to_string() }
    }

    fn closed(&self, adapter: usize) -> String {
        format!("link closed peer={}", adapter_address(adapter))
    }
}

/// One run of the binary, with the device's log at its end.
struct Run {
    output: Output,
    device: String,
}

impl std::ops::Deref for Run {
    type Target = Output;

    fn deref(&self) -> &Output {
        &self.output
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Output { code, stdout, stderr } = &self.output;
        writeln!(f, "--- wifiprov exited {code}; stdout:\n{stdout}--- stderr:\n{stderr}")?;
        write!(f, "{}", self.device)
    }
}

/// What a run of the binary printed.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Output {
    fn expect(&self, code: i32) {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
    }

    /// Stdout as exactly one JSON object.
    fn json(&self) -> serde_json::Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "--json prints exactly one line; stdout:\n{}", self.stdout);
        serde_json::from_str(lines[0]).unwrap()
    }
}

/// `wifiprov ARGS` on `zoo`'s bus, with no wifiprov settings from the environment.
fn wifiprov(zoo: &Bluezoo, args: &[&str]) -> Output {
    let mut command = zoo.command(env!("CARGO_BIN_EXE_wifiprov"));
    command.args(args);
    for var in ["WIFIPROV_DEVICE", "WIFIPROV_POP", "WIFIPROV_SEC2_USERNAME", "WIFIPROV_SEC2_PASSWORD", "RUST_LOG"] {
        command.env_remove(var);
    }
    let mut process = Process::spawn("wifiprov", command);
    process.close_stdin();
    let status = process.wait(Duration::from_secs(60));
    let Some(status) = status else {
        process.kill();
        panic!("wifiprov did not finish in time\n{process}\n{}", zoo.log());
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: process.output(Stream::Stdout),
        stderr: process.output(Stream::Stderr),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The device role (a child process)

/// wifiprovd's provisioning service over BLE on [`DEVICE_ADAPTER`], until the test closes stdin. Provisioning
/// stays open after success, so that a second client can list the saved networks. `offline`: a saved network
/// that is out of range, provisioning only as the connection policy's fallback, and ESP's auto-stop. `strict`:
/// the first wrong proof locks handshakes out for 10 minutes.
fn device_role(offline: bool, strict: bool) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let state_dir = tempfile::tempdir().unwrap();
        let radio = wifiprov_backend_sim::SimRadio::from_toml_str(FAST_SCENARIO).unwrap();
        let mut manager = ManagerConfig { connect_delay: Duration::ZERO, ..ManagerConfig::default() };
        manager.policy.attempt_timeout = Duration::from_secs(2);
        if !offline {
            // Provisioning stays open after success, so that a second client can list the saved networks.
            manager.auto_stop = AutoStop::Disabled;
        }
        let mut config = ServiceConfig { manager, ..ServiceConfig::default() };
        if strict {
            let wait = Duration::from_secs(600);
            let limit = GuessLimit { free_failures: 1, backoff: wait, max_backoff: wait };
            config.guessing = Guessing::in_memory(limit);
        }
        let store = NetworkStore::open(state_dir.path());
        if offline {
            let away = SavedNetwork::open(Ssid::try_from("out-of-range").unwrap());
            store.save(&NetworkList::from_networks(8, vec![away]).unwrap()).unwrap();
        }
        let service = ProvisioningService::new(config, Arc::new(radio), store).unwrap();
        service.create_endpoint("custom-data").await.unwrap();
        let session = bluer::Session::new().await.unwrap();
        let ble = BleFrontend { adapter: session.adapter(DEVICE_ADAPTER).unwrap(), config: BleConfig::new(NAME) };
        let frontends: Vec<Arc<dyn Frontend>> = vec![Arc::new(ble)];
        if offline {
            service.set_fallback(security(), frontends).await;
            assert!(service.start_policy().await);
        } else {
            service.start_provisioning(security(), frontends).await.unwrap();
        }
        let echo =
            |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> { Ok([b"got:", request].concat()) };
        service.register_endpoint("custom-data", Arc::new(echo)).await.unwrap();
        let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        service.deinit().await;
    });
    ExitCode::SUCCESS
}

fn security() -> DeviceSecurity {
    let creds =
        generate_salt_verifier(USER.as_bytes(), &Password::from(PASSWORD), 16, &mut SeededRandom::new(2)).unwrap();
    DeviceSecurity::sec2(Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap()), Sec2Patch::Counter)
}
