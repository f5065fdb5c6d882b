//! The `wifiprovd` binary as a person runs it: flags, the start-up banner, provisioning, SIGTERM; over HTTP and
//! over BLE (on BlueZoo, a user-space mock of BlueZ on a private D-Bus that the tests start).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use wifiprov_client::{Client, HttpClient, ProvisionOutcome};
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::{ClientSecurity, Sec2Patch};
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::bluezoo::Bluezoo;
use wifiprov_testkit::process::{Process, Stream};

use crate::common::{SCENARIO, poll};

#[tokio::test]
async fn daemon_prints_its_address_provisions_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wifiprovd"))
        .args(["--listen", "127.0.0.1:0", "--security", "2", "--sec2-username", "wifiprov"])
        .args(["--sec2-password", "s3cret-pass", "--connect-delay-ms", "10", "--show-credentials"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--scenario")
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("no 'listening on' line");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.parse::<std::net::SocketAddr>().unwrap();
        }
    };
    let banner: Vec<String> = std::iter::from_fn(|| rx.recv_timeout(Duration::from_millis(500)).ok()).collect();
    assert!(banner.iter().any(|l| l.contains("esp_prov.py --transport httpd") && l.contains(&addr.to_string())));
    assert!(banner.iter().any(|l| l.starts_with("QR payload: {\"ver\":\"v1\"")));

    let mut client = Client::new(HttpClient::connect(addr).await.unwrap());
    client
        .establish(
            ClientSecurity::sec2("wifiprov", Password::from("s3cret-pass"), Sec2Patch::Counter),
            &mut SeededRandom::new(3),
        )
        .await
        .unwrap();
    let outcome = client.provision(b"home", b"correct-horse", poll(), |_| {}).await.unwrap();
    assert!(matches!(outcome, ProvisionOutcome::Connected(_)), "{outcome:?}");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("provisioned") && log.contains("saved networks written"), "{log}");
    // The Wi-Fi passphrase and the SRP password never reach the log.
    assert!(!log.contains("correct-horse") && !log.contains("s3cret-pass"), "{log}");
}

#[test]
fn bad_flags_and_config_fail_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_wifiprovd")).args(["--security", "7"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wifiprovd: invalid configuration") && stderr.contains("security"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nsecurty = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wifiprovd")).arg("--config").arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("securty"), "the unknown key is named");
}

#[test]
fn over_ble_the_daemon_advertises_its_name_and_stops_on_sigterm() {
    let zoo = Bluezoo::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut command = zoo.command(env!("CARGO_BIN_EXE_wifiprovd"));
    command
        .args(["--transport", "ble", "--ble-adapter", "hci1", "--service-name", "PROV_B1D43E"])
        .args(["--security", "2", "--sec2-password", "s3cret-pass", "--show-credentials"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("RUST_LOG", "info");
    let mut daemon = Process::spawn("wifiprovd", command);
    // The banner's last line.
    let up = daemon.wait_for_line(Stream::Stdout, Duration::from_secs(30), |l| l.contains("esp_prov.py"));
    assert!(up.is_some(), "{daemon}{}", zoo.log());
    let banner = daemon.output(Stream::Stdout);
    for expected in [
        r#""transport":"ble""#,
        "advertising over BLE as PROV_B1D43E",
        "wifiprov --ble PROV_B1D43E --security 2",
        "esp_prov.py --transport ble --service_name PROV_B1D43E --sec_ver 2",
    ] {
        assert!(banner.contains(expected), "{expected:?} missing\n{daemon}");
    }
    assert!(daemon.output(Stream::Stderr).contains("serving protocomm over ble"), "{daemon}");

    assert!(Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap().success());
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "graceful shutdown exits 0\n{daemon}");
    // The BLE service was withdrawn, not just dropped with the process.
    assert!(daemon.output(Stream::Stderr).contains("stopped"), "{daemon}");
}

#[test]
fn over_ble_a_missing_adapter_or_bluez_is_a_clear_error() {
    let zoo = Bluezoo::start(1);
    let dir = tempfile::tempdir().unwrap();
    let out = zoo
        .command(env!("CARGO_BIN_EXE_wifiprovd"))
        .args(["--transport", "ble", "--ble-adapter", "hci7", "--security", "0"])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wifiprovd: cannot use Bluetooth adapter hci7"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_wifiprovd"))
        .args(["--transport", "ble", "--security", "0"])
        .arg("--state-dir")
        .arg(dir.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", dir.path().join("no-bus").display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wifiprovd: cannot reach BlueZ on the system D-Bus"), "{stderr}");
}
