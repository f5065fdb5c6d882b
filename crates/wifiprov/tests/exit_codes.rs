//! One test per failure class: the exit code, the message on stderr, and the JSON error object.

use wifiprov_proto::danger;
use wifiprov_proto::security::Sec2Patch;

use crate::common::{Daemon, POP, cat, dead_address, fast_manager, s, sec1, sec2, wifiprov};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_exits_6_with_advice() {
    let daemon = Daemon::start(sec2(Sec2Patch::Counter), fast_manager()).await;
    let args = cat(&[&daemon.args(), &s(&["provision", "--ssid", "home", "--passphrase", "wrong-horse", "--json"])]);
    let run = wifiprov(&args).await;
    run.expect(6).assert_no_secrets();
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["outcome"], "auth_error");
    assert!(report["ip"].is_null());
    assert!(report["reason"].as_str().unwrap().starts_with("wrong passphrase"));
    assert!(report["hint"].as_str().unwrap().contains("reset"));
    assert!(!run.stdout.contains("wrong-horse") && !run.stderr.contains("wrong-horse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_network_exits_5() {
    let daemon = Daemon::start(sec1(), fast_manager()).await;
    let args = cat(&[&daemon.args(), &s(&["provision", "--ssid", "nowhere", "--passphrase", "whatever-pass"])]);
    let run = wifiprov(&args).await;
    run.expect(5);
    assert!(run.stdout.contains("network not found"), "{}", run.stdout);
    assert!(run.stdout.contains("scan"), "the advice points at the scan: {}", run.stdout);
    let run = wifiprov(&cat(&[&args, &s(&["--json"])])).await;
    // The first failure is sticky until a reset, so the second run reports it again.
    run.expect(5);
    assert_eq!(run.json()["outcome"], "network_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pop_or_password_or_scheme_exits_4() {
    let sec1 = Daemon::start(sec1(), fast_manager()).await;
    let sec2 = Daemon::start(sec2(Sec2Patch::Counter), fast_manager()).await;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (s(&["--device", &sec1.addr.to_string(), "--pop", "wrong-pop"]), "check the proof of possession"),
        (
            s(&["--device", &sec2.addr.to_string(), "--sec2-password", "wrong-password"]),
            "check the username and password",
        ),
        (
            s(&["--device", &sec2.addr.to_string(), "--sec2-username", "mallory", "--sec2-password", "x"]),
            "check the username and password",
        ),
        (s(&["--device", &sec2.addr.to_string(), "--security", "1", "--pop", POP]), "advertises security 2"),
        (s(&["--device", &sec1.addr.to_string(), "--security", "0"]), "needs authentication"),
    ];
    for (args, hint) in cases {
        let run = wifiprov(&cat(&[&args, &s(&["status", "--json"])])).await;
        run.expect(4);
        let error = &run.json()["error"];
        assert_eq!(error["kind"], "security");
        assert_eq!(error["exit_code"], 4);
        assert!(error["message"].as_str().unwrap().contains(hint), "{hint}: {error}");
        assert!(run.stderr.starts_with("wifiprov: the device refused the security"), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "the error is printed once: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_exits_3() {
    let addr = dead_address().await;
    for command in [&["caps"][..], &["scan"], &["provision", "--ssid", "home"], &["status"], &["reset"]] {
        let args = cat(&[&s(&["--device", &addr.to_string(), "--pop", POP, "--json"]), &s(command)]);
        let run = wifiprov(&args).await;
        run.expect(3).assert_no_secrets();
        let error = &run.json()["error"];
        assert_eq!(error["kind"], "transport", "{command:?}");
        assert!(error["message"].as_str().unwrap().starts_with(&format!("cannot reach {addr}")), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2() {
    let daemon = Daemon::start(danger::sec0(), fast_manager()).await;
    let device = s(&["--device", &daemon.addr.to_string()]);
    for args in [
        s(&["caps", "--no-such-flag"]),
        s(&["--security", "3", "caps"]),
        s(&["provision", "--hidden"]),
        s(&["gen-cred", "--salt-len", "0", "--sec2-password", "x"]),
        s(&["frobnicate"]),
        s(&[]),
    ] {
        let run = wifiprov(&cat(&[&device, &args])).await;
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(run.stdout.is_empty(), "usage errors go to stderr");
    }
    // With --json, the parser's verdict is also the JSON error object.
    let run = wifiprov(&cat(&[&device, &s(&["caps", "--json", "--no-such-flag"])])).await;
    run.expect(2);
    assert_eq!(run.json()["error"]["kind"], "usage");
    assert_eq!(run.json()["error"]["exit_code"], 2);
    assert!(run.stderr.contains("--no-such-flag"));
    // Found after parsing: no device, an SSID too long, a missing secret file.
    let run = wifiprov(&s(&["caps", "--json"])).await;
    run.expect(2);
    assert_eq!(run.json()["error"]["kind"], "usage");
    assert!(run.stderr.contains("no device given"));
    wifiprov(&s(&["--device", "bad host", "caps"])).await.expect(2);
    let long = "x".repeat(33);
    wifiprov(&cat(&[&device, &s(&["provision", "--ssid", &long])])).await.expect(2);
    wifiprov(&cat(&[&device, &s(&["--pop-file", "/nonexistent/pop", "--security", "1", "status"])])).await.expect(2);
    // A sec1 device with no PoP available and no terminal to ask on.
    let sec1 = Daemon::start(sec1(), fast_manager()).await;
    let run = wifiprov(&s(&["--device", &sec1.addr.to_string(), "status"])).await;
    run.expect(2);
    assert!(run.stderr.contains("a proof of possession is needed: give --pop"), "{}", run.stderr);
}

const SLOW: &str = r#"
scan_duration_ms = 30
[[ap]]
ssid = "slow"
bssid = "02:00:00:00:00:10"
channel = 1
rssi = -50
auth = "wpa2-psk"
passphrase = "slow-pass"
join_latency_ms = 600000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_refusals_exit_1() {
    // Auto-stop is on, so the device refuses a reprov.
    let daemon = Daemon::start(sec1(), fast_manager()).await;
    let run = wifiprov(&cat(&[&daemon.args(), &s(&["reprov"])])).await;
    run.expect(1);
    assert!(run.stderr.starts_with("wifiprov: the device refused to reprovision"), "{}", run.stderr);
    // And it refuses a reset when nothing failed.
    wifiprov(&cat(&[&daemon.args(), &s(&["reset"])])).await.expect(1);
    // No final state before --timeout: the device is still connecting to a slow access point.
    let slow = Daemon::start_scenario(sec1(), fast_manager(), SLOW).await;
    let args =
        cat(&[&slow.args(), &s(&["provision", "--ssid", "slow", "--passphrase", "slow-pass", "--timeout", "1"])]);
    let run = wifiprov(&cat(&[&args, &s(&["--json"])])).await;
    run.expect(1);
    assert_eq!(run.json()["error"]["kind"], "device_failure");
    assert!(run.stderr.contains("no final connection state within"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_exit_codes_schemas_and_the_process_list() {
    let run = wifiprov(&s(&["--help"])).await;
    run.expect(0);
    assert!(run.stdout.contains("visible to every user of this\n  machine in the process list"), "{}", run.stdout);
    for code in ["0  success", "3  transport failure", "4  security failure", "5  the device could not find"] {
        assert!(run.stdout.contains(code), "{code}");
    }
    for command in ["caps", "scan", "provision", "status", "reset", "reprov", "custom", "gen-cred", "qr", "fleet"] {
        let run = wifiprov(&s(&[command, "--help"])).await;
        run.expect(0);
        assert!(run.stdout.contains("Examples:"), "{command}");
        assert!(run.stdout.contains("JSON:"), "{command}");
    }
}
