//! Commands that need no device: gen-cred (checked by provisioning a daemon with its output) and qr.

use wifiprov_proto::rng::OsRandom;
use wifiprov_proto::security::Sec2Patch;
use wifiprovd::config::{DaemonConfig, RawConfig};

use crate::common::{Daemon, PASSPHRASE, fast_manager, s, sec2_from, wifiprov, wifiprov_with};

const ALICE_PW: &str = "alice-pw-7731";

async fn provision_as_alice(daemon: &Daemon) {
    let args = s(&[
        "--device",
        &daemon.addr.to_string(),
        "--sec2-username",
        "alice",
        "provision",
        "--ssid",
        "home",
        "--passphrase",
        PASSPHRASE,
        "--json",
    ]);
    let run = wifiprov_with(&args, None, &[("WIFIPROV_SEC2_PASSWORD", ALICE_PW)]).await;
    run.expect(0);
    assert_eq!(run.json()["outcome"], "connected");
    assert!(!run.stdout.contains(ALICE_PW) && !run.stderr.contains(ALICE_PW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_cred_json_provisions_a_daemon_with_that_salt_and_verifier() {
    let args = s(&["gen-cred", "--sec2-username", "alice", "--sec2-password", ALICE_PW, "--json"]);
    let run = wifiprov(&args).await;
    run.expect(0);
    let creds = run.json();
    assert!(!run.stdout.contains(ALICE_PW));
    assert_eq!(creds["username"], "alice");
    let salt = hex::decode(creds["salt"].as_str().unwrap()).unwrap();
    let verifier = hex::decode(creds["verifier"].as_str().unwrap()).unwrap();
    assert_eq!(salt.len(), 16);
    // I2B(v) of a 3072-bit number: 384 bytes, fewer when it has leading zero bytes (as with ESP).
    assert!((370..=384).contains(&verifier.len()), "{}", verifier.len());
    for patch in [Sec2Patch::Legacy, Sec2Patch::Counter] {
        let daemon = Daemon::start(sec2_from(&salt, &verifier, patch), fast_manager()).await;
        provision_as_alice(&daemon).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_cred_toml_is_a_valid_wifiprovd_config() {
    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{ALICE_PW}\n")).unwrap();
    let args = s(&[
        "gen-cred",
        "--sec2-username",
        "alice",
        "--sec2-password-file",
        pw_file.to_str().unwrap(),
        "--format",
        "toml",
        "--salt-len",
        "32",
    ]);
    let run = wifiprov(&args).await;
    run.expect(0);
    let keys: Vec<&str> = run.stdout.lines().map(|l| l.split(" = ").next().unwrap()).collect();
    assert_eq!(keys, ["sec2_username", "sec2_salt", "sec2_verifier"]);
    // The lines are exactly what wifiprovd's configuration file takes.
    let raw: RawConfig = toml::from_str(&run.stdout).unwrap();
    assert_eq!(raw.sec2_salt.as_ref().unwrap().len(), 64);
    let config = DaemonConfig::validate(RawConfig { security: Some(2), ..raw }, &mut OsRandom).unwrap();
    let daemon = Daemon::start(config.security, fast_manager()).await;
    provision_as_alice(&daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_cred_c_arrays_and_hex_lines() {
    let args = s(&["gen-cred", "--sec2-password", ALICE_PW, "--format", "c", "--salt-len", "8"]);
    let run = wifiprov(&args).await;
    run.expect(0);
    let text = &run.stdout;
    assert!(text.starts_with("/* Security 2 credentials for username \"wifiprov\""), "{text}");
    assert!(text.contains("static const char sec2_salt[] = {\n    0x"), "{text}");
    assert!(text.contains("};\n\nstatic const char sec2_verifier[] = {\n"), "{text}");
    let salt_block = text.split("sec2_salt[] = {\n").nth(1).unwrap().split("};").next().unwrap();
    assert_eq!(salt_block.matches("0x").count(), 8);
    let verifier_block = text.split("sec2_verifier[] = {\n").nth(1).unwrap();
    let bytes = verifier_block.matches("0x").count();
    assert!((370..=384).contains(&bytes), "{bytes}");
    assert_eq!(verifier_block.lines().filter(|l| l.starts_with("    0x")).count(), bytes.div_ceil(8), "eight a line");

    let run = wifiprov(&s(&["gen-cred", "--sec2-password", ALICE_PW])).await;
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "username: wifiprov");
    assert!(lines[1].starts_with("salt:     ") && lines[1].len() == 10 + 32);
    assert!(lines[2].starts_with("verifier: ") && (10 + 740..=10 + 768).contains(&lines[2].len()));

    // No password and no terminal to ask on.
    let run = wifiprov(&s(&["gen-cred", "--json"])).await;
    run.expect(2);
    assert_eq!(run.json()["error"]["kind"], "usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_payload_is_exact() {
    let run = wifiprov(&s(&[
        "qr",
        "--name",
        "PROV_123456",
        "--username",
        "wifiprov",
        "--pop",
        "abcd1234",
        "--transport",
        "ble",
        "--json",
    ]))
    .await;
    run.expect(0);
    assert_eq!(
        run.json(),
        serde_json::json!({
            "ok": true,
            "payload": r#"{"ver":"v1","name":"PROV_123456","username":"wifiprov","pop":"abcd1234","transport":"ble"}"#
        })
    );
    assert!(run.stderr.is_empty(), "stderr is not a terminal, so no drawing: {}", run.stderr);

    // Text: the payload line, then the drawing (half-block characters).
    let run = wifiprov(&s(&["qr", "--name", "PROV_1", "--pop", "abcd1234"])).await;
    run.expect(0);
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next().unwrap(), r#"{"ver":"v1","name":"PROV_1","pop":"abcd1234","transport":"softap"}"#);
    let drawing: Vec<&str> = lines.collect();
    assert!(drawing.len() > 10 && drawing.iter().any(|l| l.contains('█') || l.contains('▀')));

    // Security 0: no pop field; the sec2 password options fill it when a username is given.
    let run = wifiprov(&s(&["qr", "--name", "PROV_1", "--json"])).await;
    assert_eq!(run.json()["payload"], r#"{"ver":"v1","name":"PROV_1","transport":"softap"}"#);
    let run = wifiprov_with(
        &s(&["qr", "--name", "PROV_1", "--username", "u", "--json"]),
        None,
        &[("WIFIPROV_SEC2_PASSWORD", "pw")],
    )
    .await;
    assert_eq!(run.json()["payload"], r#"{"ver":"v1","name":"PROV_1","username":"u","pop":"pw","transport":"softap"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_is_not_an_error() {
    for json in [false, true] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wifiprov"));
        command.args(["qr", "--name", "PROV_1"]);
        if json {
            command.arg("--json");
        }
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the binary writes (like `wifiprov … | head -c0`).
        drop(child.stdout.take());
        let output =
            tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}
