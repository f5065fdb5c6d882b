//! Both BlueZ halves end to end, over BlueZoo (a user-space mock of BlueZ) on a private D-Bus daemon: the device
//! half serves a real protocomm instance (security 2 and an echo endpoint) on adapter `hci0`, and the client half
//! finds it by name from `hci1`, maps its endpoints, reads proto-ver, runs the handshake and exchanges an
//! encrypted value of more than 400 bytes.
//!
//! libdbus finds the bus only through `DBUS_SYSTEM_BUS_ADDRESS`, which a process may not set for itself (that
//! needs `unsafe`), and the address is known only once the test has started the bus. So each test starts the bus
//! and BlueZoo, then runs both halves as child processes of this same binary with the variable set, each in the
//! role `main` reads from the environment (see `wifiprov_testkit::harness`). Every process is killed and reaped
//! when the test ends, also when it fails.
//!
//! BlueZoo hands whole values to `ReadValue`/`WriteValue` at offset 0, so ATT fragmentation (long writes, Read
//! Blob) is not exercised here; the unit tests cover offset reads.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wifiprov_proto::endpoint::{HandlerError, Protocomm, SessionId, SessionLimits, names};
use wifiprov_proto::rng::OsRandom;
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::{
    ClientSecurity, ClientSession, DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier,
};
use wifiprov_proto::version::{ProvInfo, VersionInfo};
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::bluezoo::{Bluezoo, adapter_address};
use wifiprov_testkit::harness::{self, ROLE_VAR};
use wifiprov_testkit::process::{Process, Stream};
use wifiprov_transport_ble::bluer;
use wifiprov_transport_ble::{BleClient, BleClientConfig, BleConfig, BleError, Device, serve};

const NAME: &str = "PROV_B1E7E5";
const USER: &str = "wifiprov";
const PASSWORD: &str = "ble-pw-Q7x2";
const ECHO: &str = "custom-echo";

/// The adapter a role uses.
const ADAPTER_VAR: &str = "WIFIPROV_BLE_TEST_ADAPTER";
/// The security 2 password the client role tries.
const PASSWORD_VAR: &str = "WIFIPROV_BLE_TEST_PASSWORD";

/// How long one client run may take, discovery included.
const CLIENT_RUN: Duration = Duration::from_secs(90);

fn main() -> ExitCode {
    match harness::role().as_deref() {
        Some("device") => device_role(),
        Some("client") => client_role(),
        Some(other) => panic!("unknown role {other}"),
        None => harness::run(&[
            ("handshake_long_values_and_a_second_client", handshake_long_values_and_a_second_client),
            ("a_refused_handshake_does_not_stop_the_device", a_refused_handshake_does_not_stop_the_device),
        ]),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests (the parent process)

fn handshake_long_values_and_a_second_client() {
    let zoo = Bluezoo::start(3);
    let mut device = device(&zoo);
    let started = Instant::now();
    let mut client = role(&zoo, "client", "hci1", Some(PASSWORD));
    expect_success(&mut client, &[&device], &zoo);
    eprintln!("first client run: {:.1}s", started.elapsed().as_secs_f64());
    // A second client on a new link gets a session of its own. It comes from another adapter: BlueZoo cannot
    // connect the same pair of adapters twice (see `wifiprov_testkit::bluezoo`).
    let started = Instant::now();
    let mut second = role(&zoo, "client", "hci2", Some(PASSWORD));
    expect_success(&mut second, &[&device, &client], &zoo);
    eprintln!("second client run: {:.1}s", started.elapsed().as_secs_f64());
    // Each client disconnected when it closed; the device noticed and closed that link's session.
    for peer in [adapter_address(1), adapter_address(2)] {
        let closed = format!("link closed peer={peer} session=Some(");
        let seen = device.wait_for_line(Stream::Stderr, Duration::from_secs(10), |l| l.contains(&closed));
        assert!(seen.is_some(), "the device did not close the session of {peer}\n{device}{}", zoo.log());
    }
    stop_device(&mut device, &zoo);
    for process in [&device, &client, &second] {
        assert_no_secret(process);
    }
}

fn a_refused_handshake_does_not_stop_the_device() {
    let zoo = Bluezoo::start(3);
    let mut device = device(&zoo);
    let mut wrong = role(&zoo, "client", "hci1", Some("not-the-password"));
    expect_success(&mut wrong, &[&device], &zoo);
    assert!(
        device.output(Stream::Stderr).contains("request refused; disconnecting"),
        "the device logs the refusal\n{device}"
    );
    let mut right = role(&zoo, "client", "hci2", Some(PASSWORD));
    expect_success(&mut right, &[&device, &wrong], &zoo);
    stop_device(&mut device, &zoo);
    for process in [&device, &wrong, &right] {
        assert_no_secret(process);
    }
}

/// Starts the device role on `hci0` and waits until it advertises.
fn device(zoo: &Bluezoo) -> Process {
    let device = role(zoo, "device", "hci0", None);
    let up =
        device.wait_for_line(Stream::Stderr, Duration::from_secs(30), |l| l.contains("serving protocomm over ble"));
    assert!(up.is_some(), "the device did not start\n{device}{}", zoo.log());
    device
}

/// Starts this binary in `role` on `adapter`.
fn role(zoo: &Bluezoo, role: &str, adapter: &str, password: Option<&str>) -> Process {
    let mut command = zoo.command(std::env::current_exe().unwrap());
    command.env(ROLE_VAR, role).env(ADAPTER_VAR, adapter).env("RUST_BACKTRACE", "1");
    command.env("RUST_LOG", "wifiprov_transport_ble=debug,wifiprov_proto=debug,warn");
    if let Some(password) = password {
        command.env(PASSWORD_VAR, password);
    }
    Process::spawn(&format!("{role} on {adapter}"), command)
}

/// Waits for a client role to finish and fails the test, with every log, unless it succeeded.
fn expect_success(client: &mut Process, others: &[&Process], zoo: &Bluezoo) {
    let status = client.wait(CLIENT_RUN);
    if status.is_some_and(|s| s.success()) {
        return;
    }
    client.kill();
    let others: String = others.iter().map(|p| p.to_string()).collect();
    panic!("the client failed ({status:?})\n{client}{others}{}", zoo.log());
}

/// Stops the device role by closing its stdin, and checks that it shut down cleanly.
fn stop_device(device: &mut Process, zoo: &Bluezoo) {
    device.close_stdin();
    let status = device.wait(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "the device did not stop cleanly ({status:?})\n{device}{}", zoo.log());
    assert!(device.output(Stream::Stderr).contains("stopped"), "{device}");
}

fn assert_no_secret(process: &Process) {
    let all = process.to_string();
    assert!(!all.contains(PASSWORD), "the password shows up in the output of a process\n{all}");
}

// ---------------------------------------------------------------------------------------------------------------
// Roles (child processes)

fn runtime() -> tokio::runtime::Runtime {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn adapter() -> String {
    std::env::var(ADAPTER_VAR).unwrap()
}

/// The device half on its adapter, serving until stdin closes.
fn device_role() -> ExitCode {
    runtime().block_on(async {
        let session = bluer::Session::new().await.unwrap();
        let adapter = session.adapter(&adapter()).unwrap();
        let dispatcher = Arc::new(wifiprov_dispatch::Dispatcher::new(protocomm(), Box::new(OsRandom)));
        let device = Arc::new(Device::new(dispatcher, BleConfig::new(NAME)));
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        };
        serve(&adapter, device, stdin_closed).await.unwrap();
    });
    ExitCode::SUCCESS
}

/// A device like wifiprovd's, reduced to what the test needs: security 2, proto-ver, a `prov-config` that
/// refuses everything (the client only requires that it exists), and an echo endpoint.
fn protocomm() -> Protocomm {
    let creds =
        generate_salt_verifier(USER.as_bytes(), &Password::from(PASSWORD), 16, &mut SeededRandom::new(1)).unwrap();
    let verifier = Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap();
    let security = DeviceSecurity::sec2(Arc::new(verifier), Sec2Patch::Counter);
    let version = VersionInfo { app_info: Vec::new(), prov: Some(ProvInfo::for_device(&security)) }.to_cjson();
    let mut protocomm = Protocomm::new(SessionLimits::default());
    let _ = protocomm.set_security(names::PROV_SESSION, security).unwrap();
    let config =
        |_: Option<SessionId>, _: &[u8]| -> Result<Vec<u8>, HandlerError> { Err(HandlerError::Rejected("no".into())) };
    protocomm.add_endpoint(names::PROV_CONFIG, Arc::new(config)).unwrap();
    protocomm.set_version(names::PROTO_VER, version).unwrap();
    let echo =
        |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> { Ok([b"echo:", request].concat()) };
    protocomm.add_endpoint(ECHO, Arc::new(echo)).unwrap();
    protocomm
}

/// The client half on its adapter: everything a provisioning client does before sending credentials, plus a
/// long encrypted round trip. With a wrong password it checks that the device refuses the handshake.
fn client_role() -> ExitCode {
    runtime().block_on(async {
        let password = std::env::var(PASSWORD_VAR).unwrap();
        let mut config = BleClientConfig::default();
        config.adapter = Some(adapter());
        config.discovery_timeout = Duration::from_secs(30);
        let started = Instant::now();
        let mut client = BleClient::connect(NAME, config).await.unwrap();
        eprintln!("connected to {} in {:.1}s", client.address(), started.elapsed().as_secs_f64());
        let mut found: Vec<&str> = client.endpoints().names().collect();
        found.sort_unstable();
        assert_eq!(found, [ECHO, names::PROTO_VER, names::PROV_CONFIG, names::PROV_SESSION]);

        let version = VersionInfo::parse(&client.request(names::PROTO_VER, b"ESP").await.unwrap()).unwrap();
        assert_eq!(version.prov.as_ref().and_then(|p| p.sec_ver), Some(2), "{version:?}");

        let security =
            ClientSecurity::sec2(USER.as_bytes().to_vec(), Password::from(password.as_str()), Sec2Patch::Counter);
        let mut session = ClientSession::new(security);
        let mut request = session.start(&mut OsRandom).unwrap();
        let mut longest = 0;
        loop {
            let response = match client.request(names::PROV_SESSION, &request).await {
                Ok(response) => response,
                Err(BleError::Refused { endpoint, .. }) if password != PASSWORD => {
                    assert_eq!(endpoint, names::PROV_SESSION);
                    eprintln!("the device refused the wrong password, as it should");
                    client.close().await.unwrap();
                    return;
                }
                Err(e) => panic!("handshake: {}", anyhow_like(&e)),
            };
            longest = longest.max(response.len());
            match session.handle_response(&response, &mut OsRandom).unwrap() {
                Some(next) => request = next,
                None => break,
            }
        }
        assert_eq!(password, PASSWORD, "the handshake must fail with a wrong password");
        assert!(longest > 400, "security 2's Response0 is a long value ({longest} bytes)");

        let payload: Vec<u8> = (0..450u32).map(|i| (i * 7) as u8).collect();
        let mut body = payload.clone();
        session.encrypt(&mut body).unwrap();
        let mut reply = client.request(ECHO, &body).await.unwrap();
        assert!(reply.len() > 450);
        session.decrypt(&mut reply).unwrap();
        assert_eq!(reply, [b"echo:".as_slice(), &payload].concat());

        let missing = client.request(names::PROV_SCAN, b"x").await;
        assert!(matches!(missing, Err(BleError::UnknownEndpoint { .. })), "{missing:?}");
        client.close().await.unwrap();
        let closed = client.request(names::PROTO_VER, b"ESP").await;
        assert!(matches!(closed, Err(BleError::Disconnected { .. })), "{closed:?}");
        eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    });
    ExitCode::SUCCESS
}

/// `error: source: source…`, for panic messages.
fn anyhow_like(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}
