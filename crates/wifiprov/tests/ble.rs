//! `wifiprov --ble NAME …` end to end over BlueZoo (a user-space mock of BlueZ) on a private D-Bus daemon: the
//! device is wifiprov-transport-ble's device half serving a protocomm instance (security 2, a small `prov-scan`
//! with fixed results, an echo endpoint) on adapter `hci1`, and the binary finds it from the default adapter,
//! `hci0`.
//!
//! A test binary of its own, with its own `main`: the device half must reach the private bus through
//! `DBUS_SYSTEM_BUS_ADDRESS`, which a process may not set for itself without `unsafe`, so it runs as a child
//! process of this binary in the role `main` reads from the environment (see `wifiprov_testkit::harness`).
//! BlueZoo cannot connect the same two adapters twice, so every run of the binary gets a fresh BlueZoo.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use wifiprov_proto::endpoint::{HandlerError, Protocomm, SessionId, SessionLimits, names};
use wifiprov_proto::messages::scan::{self, ScanEntry};
use wifiprov_proto::messages::{AuthMode, Status};
use wifiprov_proto::rng::OsRandom;
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::{DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier};
use wifiprov_proto::version::{ProvInfo, VersionInfo};
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::bluezoo::{Bluezoo, adapter_address};
use wifiprov_testkit::harness::{self, ROLE_VAR};
use wifiprov_testkit::process::{Process, Stream};
use wifiprov_transport_ble::{BleConfig, Device, bluer, serve};

const NAME: &str = "PROV_C11B1E";
const USER: &str = "wifiprov";
const PASSWORD: &str = "cli-ble-pw-93k";
/// The device's adapter; the binary uses the default one, `hci0`.
const DEVICE_ADAPTER: &str = "hci1";
/// More than one BLE scan page (4 entries), so paging is exercised.
const NETWORKS: usize = 6;

fn main() -> ExitCode {
    match harness::role().as_deref() {
        Some("device") => device_role(),
        Some(other) => panic!("unknown role {other}"),
        None => harness::run(&[
            ("caps_json", caps_json),
            ("scan_json_pages_over_ble", scan_json_pages_over_ble),
            ("custom_endpoint", custom_endpoint),
            ("wrong_password_is_a_security_failure", wrong_password_is_a_security_failure),
            ("no_such_device_is_a_transport_failure", no_such_device_is_a_transport_failure),
        ]),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests (the parent process)

fn caps_json() {
    let run = Run::against_device(&["caps", "--json"]);
    run.expect(0);
    let json = run.json();
    assert_eq!(json["ok"], true, "{run}");
    assert_eq!(json["device"], NAME);
    assert_eq!(json["sec_ver"], 2);
    assert_eq!(json["security"], 2);
    assert!(json["capabilities"].as_array().unwrap().iter().any(|c| c == "wifi_scan"), "{run}");
}

fn scan_json_pages_over_ble() {
    let run = Run::against_device(&["--sec2-username", USER, "--sec2-password", PASSWORD, "scan", "--json"]);
    run.expect(0);
    let json = run.json();
    let networks = json["networks"].as_array().unwrap();
    assert_eq!(networks.len(), NETWORKS, "{run}");
    let rssi: Vec<i64> = networks.iter().map(|n| n["rssi"].as_i64().unwrap()).collect();
    assert!(rssi.windows(2).all(|w| w[0] >= w[1]), "strongest first: {rssi:?}");
    assert_eq!(networks[0]["ssid"], "ble-net-5");
    // Six entries in pages of four: two result requests after start and status.
    let results = run.device.output(Stream::Stderr).matches("endpoint=prov-scan").count();
    assert!(results >= 4, "start, status and two result pages expected\n{run}");
}

fn custom_endpoint() {
    let run = Run::against_device(&[
        "--sec2-username",
        USER,
        "--sec2-password",
        PASSWORD,
        "custom",
        "custom-data",
        "hello over ble",
        "--json",
    ]);
    run.expect(0);
    assert_eq!(run.json()["reply"], "got:hello over ble", "{run}");
}

fn wrong_password_is_a_security_failure() {
    let run = Run::against_device(&["--sec2-username", USER, "--sec2-password", "wrong-password", "status"]);
    run.expect(4);
    assert!(run.stderr.contains("the device refused the security 2 handshake"), "{run}");
}

fn no_such_device_is_a_transport_failure() {
    let zoo = Bluezoo::start(2);
    let run = Run::wifiprov(&zoo, &["--ble", "PROV_ABSENT", "--connect-timeout", "2", "caps", "--json"]);
    run.expect(3);
    let message = run.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(r#"no device named "PROV_ABSENT" advertising found within 2"#), "{message}");
}

/// One run of the binary, with what it printed, and the device it ran against.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    device: Process,
    // Dropped last: the device's bus.
    _zoo: Bluezoo,
}

impl Run {
    /// A fresh BlueZoo and device, then `wifiprov --ble NAME ARGS`; checks that the binary ended its link.
    fn against_device(args: &[&str]) -> Self {
        let zoo = Bluezoo::start(2);
        let device = device(&zoo);
        let mut all = vec!["--ble", NAME];
        all.extend_from_slice(args);
        let run = Self::wifiprov(&zoo, &all);
        // The binary disconnects before it exits (BlueZ would keep the link up otherwise); the device notices
        // and closes the link's session.
        let closed = format!("link closed peer={}", adapter_address(0));
        let seen = device.wait_for_line(Stream::Stderr, Duration::from_secs(10), |l| l.contains(&closed));
        let run = Self { code: run.code, stdout: run.stdout, stderr: run.stderr, device, _zoo: zoo };
        assert!(seen.is_some(), "the binary left its BLE link up\n{run}");
        assert!(!run.to_string().contains(PASSWORD), "the password shows up in the output\n{run}");
        run
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

    fn expect(&self, code: i32) {
        assert_eq!(self.code, code, "exit code\n{self}");
    }

    /// Stdout as exactly one JSON object.
    fn json(&self) -> serde_json::Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "--json prints exactly one line\n{self}");
        serde_json::from_str(lines[0]).unwrap()
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

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- wifiprov exited {}; stdout:\n{}--- stderr:\n{}", self.code, self.stdout, self.stderr)?;
        write!(f, "{}", self.device)
    }
}

/// Starts this binary as the device on [`DEVICE_ADAPTER`] and waits until it serves.
fn device(zoo: &Bluezoo) -> Process {
    let mut command = zoo.command(std::env::current_exe().unwrap());
    command.env(ROLE_VAR, "device").env("RUST_LOG", "wifiprov_transport_ble=debug,warn").env("RUST_BACKTRACE", "1");
    let device = Process::spawn("device", command);
    // Advertising once this is logged, so the binary's scan finds it at once.
    let up =
        device.wait_for_line(Stream::Stderr, Duration::from_secs(30), |l| l.contains("serving protocomm over ble"));
    assert!(up.is_some(), "the device did not start\n{device}{}", zoo.log());
    device
}

// ---------------------------------------------------------------------------------------------------------------
// The device role (a child process)

fn device_role() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let session = bluer::Session::new().await.unwrap();
        let adapter = session.adapter(DEVICE_ADAPTER).unwrap();
        let device = Arc::new(Device::new(protocomm(), Box::new(OsRandom), BleConfig::new(NAME)));
        // Serves until the test closes stdin (or kills the process).
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        };
        serve(&adapter, device, stdin_closed).await.unwrap();
    });
    ExitCode::SUCCESS
}

/// wifiprovd's endpoints in its order, with stand-ins for the manager's: `prov-scan` answers from a fixed list,
/// `prov-config` refuses everything (these tests do not provision).
fn protocomm() -> Protocomm {
    let creds =
        generate_salt_verifier(USER.as_bytes(), &Password::from(PASSWORD), 16, &mut SeededRandom::new(2)).unwrap();
    let security =
        DeviceSecurity::sec2(Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap()), Sec2Patch::Counter);
    let version = VersionInfo { app_info: Vec::new(), prov: Some(ProvInfo::for_device(&security)) }.to_cjson();
    let refuse = |_: SessionId, _: &[u8]| -> Result<Vec<u8>, HandlerError> { Err(HandlerError::Rejected("no".into())) };
    let echo = |_: SessionId, request: &[u8]| -> Result<Vec<u8>, HandlerError> { Ok([b"got:", request].concat()) };
    let mut protocomm = Protocomm::new(SessionLimits::default());
    protocomm.add_endpoint(names::PROV_SCAN, Arc::new(scan_handler)).unwrap();
    protocomm.set_security(names::PROV_SESSION, security).unwrap();
    protocomm.add_endpoint(names::PROV_CONFIG, Arc::new(refuse)).unwrap();
    protocomm.set_version(names::PROTO_VER, version).unwrap();
    protocomm.add_endpoint("custom-data", Arc::new(echo)).unwrap();
    protocomm
}

/// A device that has always just finished scanning: [`NETWORKS`] networks, weakest first.
fn scan_handler(_: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
    let entries: Vec<ScanEntry> = (0..NETWORKS)
        .map(|i| ScanEntry {
            ssid: format!("ble-net-{i}").into_bytes(),
            channel: 1 + i as u32,
            rssi: -80 + 5 * i as i32,
            bssid: vec![0x02, 0, 0, 0, 0x10, i as u8],
            auth: AuthMode::Wpa2Psk,
        })
        .collect();
    let response = match scan::Request::decode(request).map_err(|e| HandlerError::Malformed(Box::new(e)))? {
        scan::Request::Start { .. } => scan::Response::Start { status: Status::Success },
        scan::Request::Status => {
            scan::Response::Status { status: Status::Success, finished: true, result_count: NETWORKS as u32 }
        }
        scan::Request::Result { start_index, count } => {
            let page = entries.iter().skip(start_index as usize).take(count as usize).cloned().collect();
            scan::Response::Result { status: Status::Success, entries: page }
        }
    };
    Ok(response.encode())
}
