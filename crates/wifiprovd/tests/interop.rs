//! Interop with a client we did not write: Espressif's provisioning client as shipped in PyPI's
//! `esp-rainmaker-cli` (`rmaker_tools.rmaker_prov`), driven by `tests/interop/esp_client.py` against the real
//! `wifiprovd` binary, for every security scheme. `tests/interop/setup.sh` provides the Python environment
//! (idempotent: it installs pinned wheels on first use only).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::SCENARIO;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interop venv's python, set up once per test binary.
fn python() -> &'static PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/interop/setup.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cannot run tests/interop/setup.sh");
        assert!(out.status.success(), "tests/interop/setup.sh failed; see its messages above");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

struct RunningDaemon {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(args: &[&str]) -> RunningDaemon {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wifiprovd"))
        .args(["--listen", "127.0.0.1:0", "--no-auto-stop", "--connect-delay-ms", "10"])
        .args(args)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--scenario")
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20)).expect("wifiprovd did not start");
    RunningDaemon { child, addr, _dir: dir }
}

/// Runs one esp_client.py command; returns its JSON report after checking the exit code.
fn esp(daemon: &RunningDaemon, security: &[&str], command: &[&str], expect_ok: bool) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/interop/esp_client.py"))
        .args(["--addr", &daemon.addr])
        .args(security)
        .args(command)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "esp_client.py printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(out.status.success(), expect_ok, "{command:?} with {security:?}: {report:#}");
    report
}

fn full_session(device: &[&str], client: &[&str], wrong_client: Option<&[&str]>) {
    let d = daemon(device);
    let version = esp(&d, client, &["version", "--expect-ver", "v1.1", "--capability", "wifi_scan"], true);
    assert_eq!(version["ok"], true);
    if let Some(wrong) = wrong_client {
        esp(&d, wrong, &["session", "--expect", "fail"], true);
    }
    let scan = esp(&d, client, &["scan", "--expect-count", "5", "--expect-ssid", "home"], true);
    assert_eq!(scan["aps"][0]["ssid"], "home", "strongest first: {scan:#}");
    esp(&d, client, &["provision", "--ssid", "home", "--passphrase", "wrong-horse", "--expect", "auth_error"], true);
    esp(&d, client, &["reset"], true);
    esp(&d, client, &["provision", "--ssid", "nowhere", "--passphrase", "whatever1", "--expect", "not_found"], true);
    esp(&d, client, &["reset"], true);
    let ok = esp(
        &d,
        client,
        &["provision", "--ssid", "home", "--passphrase", "correct-horse", "--expect", "connected"],
        true,
    );
    assert_eq!(ok["status"]["connected"]["ip4_addr"], "10.0.0.10", "{ok:#}");
    esp(&d, client, &["reprov"], true);
    esp(&d, client, &["provision", "--ssid", "cafe", "--expect", "connected"], true);
}

#[test]
fn espressif_client_security_0() {
    full_session(&["--security", "0"], &["--sec", "0"], None);
}

#[test]
fn espressif_client_security_1() {
    full_session(
        &["--security", "1", "--pop", "abcd1234"],
        &["--sec", "1", "--pop", "abcd1234"],
        Some(&["--sec", "1", "--pop", "wrongpop"]),
    );
}

#[test]
fn espressif_client_security_2_patch_1() {
    full_session(
        &["--security", "2", "--sec2-username", "wifiprov", "--sec2-password", "abcd1234"],
        &["--sec", "2", "--username", "wifiprov", "--password", "abcd1234"],
        Some(&["--sec", "2", "--username", "wifiprov", "--password", "abcd1235"]),
    );
}

#[test]
fn espressif_client_security_2_patch_0() {
    full_session(
        &["--security", "2", "--sec2-patch", "0", "--sec2-username", "wifiprov", "--sec2-password", "abcd1234"],
        &["--sec", "2", "--username", "wifiprov", "--password", "abcd1234"],
        None,
    );
}
