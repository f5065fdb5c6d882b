//! Every device subcommand, with every security scheme.

use wifiprov_proto::danger;
use wifiprov_proto::security::Sec2Patch;

use crate::common::{
    Daemon, PASSPHRASE, cat, every_scheme, fast_manager, persistent, s, sec1, sec2, wifiprov, wifiprov_with,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_reports_the_scheme_patch_level_and_capabilities() {
    for (name, security) in every_scheme().into_iter().chain([("sec1-no-pop", danger::sec1_without_pop())]) {
        let daemon = Daemon::start(security, fast_manager()).await;
        let device = s(&["--device", &daemon.addr.to_string()]);
        let run = wifiprov(&cat(&[&device, &s(&["caps", "--json"])])).await;
        run.expect(0);
        let caps = run.json();
        assert_eq!(caps["ok"], true);
        assert_eq!(caps["device"], daemon.addr.to_string());
        assert_eq!(caps["prov_version"], "v1.1");
        let (scheme, patch, first_cap) = match name {
            "sec0" => (0, 0, Some("no_sec")),
            "sec1" => (1, 0, None),
            "sec1-no-pop" => (1, 0, Some("no_pop")),
            "sec2-patch0" => (2, 0, None),
            _ => (2, 1, None),
        };
        assert_eq!(caps["security"], scheme, "{name}");
        assert_eq!(caps["sec_ver"], scheme, "{name}");
        assert_eq!(caps["sec_patch_ver"], patch, "{name}");
        assert_eq!(caps["patch_level"], patch, "{name}");
        let capabilities: Vec<&str> =
            caps["capabilities"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert!(capabilities.contains(&"wifi_scan"), "{name}: {capabilities:?}");
        if let Some(cap) = first_cap {
            assert_eq!(capabilities[0], cap, "{name}");
        }

        // A session works with the scheme's credentials (a PoP given to a no_pop device is not used).
        let args = cat(&[&device, &crate::common::creds(&daemon.security)]);
        let run = wifiprov(&cat(&[&args, &s(&["status", "--json"])])).await;
        run.expect(0);
        assert_eq!(run.json()["security"], scheme, "{name}");

        let text = wifiprov(&cat(&[&device, &s(&["caps"])])).await;
        text.expect(0);
        assert!(text.stdout.contains(&format!("security:      {scheme}")), "{name}: {}", text.stdout);
        assert!(text.stdout.contains("wifi_scan"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_connects_with_every_scheme() {
    for (name, security) in every_scheme() {
        let daemon = Daemon::start(security, fast_manager()).await;
        // With trace logging on stderr, which must not carry secrets either.
        let args =
            cat(&[&daemon.args(), &s(&["-vv", "provision", "--ssid", "home", "--passphrase", PASSPHRASE, "--json"])]);
        let run = wifiprov(&args).await;
        run.expect(0).assert_no_secrets();
        assert!(run.stderr.contains("session established"), "trace logs are on: {}", run.stderr);
        let report = run.json();
        assert_eq!(report["ok"], true, "{name}: {report}");
        assert_eq!(report["outcome"], "connected");
        assert_eq!(report["security"], daemon.security.version().number());
        assert_eq!(report["ssid"], "home");
        assert_eq!(report["ip"], "10.0.0.10");
        assert_eq!(report["bssid"], "02:00:00:00:00:01");
        assert_eq!(report["channel"], 6);
        assert_eq!(report["auth"], "wpa2-psk");
        assert!(report["reason"].is_null() && report["hint"].is_null());
        assert!(report["elapsed_ms"].as_u64().unwrap() < 10_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_prints_a_clear_result_for_people() {
    let daemon = Daemon::start(sec1(), fast_manager()).await;
    let args = cat(&[&daemon.args(), &s(&["provision", "--ssid", "home"])]);
    let run = wifiprov_with(&args, None, &[("WIFIPROV_PASSPHRASE", PASSPHRASE)]).await;
    run.expect(0).assert_no_secrets();
    assert_eq!(
        run.stdout,
        "connected to \"home\"\n  ip address:  10.0.0.10\n  bssid:       02:00:00:00:00:01\n  channel:     6\n  \
         security:    wpa2-psk\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_and_open_networks_and_secret_sources() {
    let dir = tempfile::tempdir().unwrap();
    let pass_file = dir.path().join("pass");
    std::fs::write(&pass_file, "hidden-pass\n").unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, format!("{}\n", crate::common::PASSWORD)).unwrap();

    // Security 2 password from a file, passphrase from a file, a hidden network by name.
    let daemon = Daemon::start(sec2(Sec2Patch::Counter), fast_manager()).await;
    let args = cat(&[
        &s(&["--device", &daemon.addr.to_string(), "--sec2-password-file", pw_file.to_str().unwrap()]),
        &s(&["provision", "--ssid", "hidden", "--hidden", "--passphrase-file", pass_file.to_str().unwrap(), "--json"]),
    ]);
    let run = wifiprov(&args).await;
    run.expect(0).assert_no_secrets();
    assert_eq!(run.json()["bssid"], "02:00:00:00:00:05");

    // The PoP from the environment; an open network without any passphrase.
    let daemon = Daemon::start(sec1(), fast_manager()).await;
    let args = s(&["--device", &daemon.addr.to_string(), "provision", "--ssid", "cafe", "--json"]);
    let run = wifiprov_with(&args, None, &[("WIFIPROV_POP", crate::common::POP)]).await;
    run.expect(0).assert_no_secrets();
    assert_eq!(run.json()["auth"], "open");
}

/// One access point whose first two joins fail, each join taking long enough to be seen by polling.
const FLAKY: &str = r#"
scan_duration_ms = 30
[[ap]]
ssid = "flaky"
bssid = "02:00:00:00:00:06"
channel = 4
rssi = -60
auth = "wpa2-psk"
passphrase = "flaky-pass"
flaky_joins = 2
join_latency_ms = 150
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_remaining_are_shown_as_they_change() {
    let manager = wifiprov_manager::ManagerConfig { connect_attempts: 3, ..fast_manager() };
    let daemon = Daemon::start_scenario(sec1(), manager, FLAKY).await;
    // The third of three attempts succeeds.
    let provision = ["provision", "--ssid", "flaky", "--passphrase", "flaky-pass", "--poll-interval", "10", "--json"];
    let run = wifiprov(&cat(&[&daemon.args(), &s(&provision)])).await;
    run.expect(0).assert_no_secrets();
    assert_eq!(run.json()["attempts_remaining"], serde_json::json!([2, 1]));
    assert!(run.stderr.contains("connection attempt failed: 2 attempts remaining"), "{}", run.stderr);
    assert!(run.stderr.contains("connection attempt failed: 1 attempt remaining"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_without_ssid_picks_from_a_scan_through_stdin() {
    let daemon = Daemon::start(sec2(Sec2Patch::Counter), fast_manager()).await;
    // Strongest first: home, office, flaky, cafe, attic; "2" is office (WPA3).
    let args = cat(&[&daemon.args(), &s(&["provision", "--json"])]);
    let run = wifiprov_with(&args, Some("2\n"), &[("WIFIPROV_PASSPHRASE", "office-secret")]).await;
    run.expect(0).assert_no_secrets();
    let report = run.json();
    assert_eq!(report["ssid"], "office");
    assert_eq!(report["auth"], "wpa3-psk");
    let list: Vec<&str> = run.stderr.lines().filter(|l| l.contains("02:00:00:00:00:0")).collect();
    assert_eq!(list.len(), 5, "{}", run.stderr);
    assert!(list[0].trim_start().starts_with("1  home") && list[1].trim_start().starts_with("2  office"), "{list:?}");
    assert!(run.stderr.contains("Choose a network [1-5]"));

    // An open network needs no passphrase; a choice by SSID works too.
    let daemon = Daemon::start(sec1(), fast_manager()).await;
    let args = cat(&[&daemon.args(), &s(&["provision", "--json"])]);
    let run = wifiprov_with(&args, Some("cafe"), &[]).await;
    run.expect(0);
    assert_eq!(run.json()["ssid"], "cafe");

    // A secured network without a passphrase, with no terminal to ask on: a usage error.
    let daemon = Daemon::start(sec1(), fast_manager()).await;
    let run = wifiprov_with(&cat(&[&daemon.args(), &s(&["provision"])]), Some("1\n"), &[]).await;
    run.expect(2);
    assert!(run.stderr.contains("a Wi-Fi passphrase is needed"), "{}", run.stderr);
    // Nothing chosen, or out of range.
    let run = wifiprov_with(&cat(&[&daemon.args(), &s(&["provision"])]), Some(""), &[]).await;
    run.expect(2);
    assert!(run.stderr.contains("wifiprov: no network chosen"), "{}", run.stderr);
    let run = wifiprov_with(&cat(&[&daemon.args(), &s(&["provision"])]), Some("9\n"), &[]).await;
    run.expect(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_status_reset_reprov_and_custom_with_every_scheme() {
    for (name, security) in every_scheme() {
        let daemon = Daemon::start_with(security, persistent(), true).await;
        let base = daemon.args();
        let run = |extra: &[&str]| {
            let args = cat(&[&base, &s(extra)]);
            async move { wifiprov(&args).await }
        };

        // scan: strongest first, the hidden network absent.
        let scan = run(&["scan", "--json"]).await;
        scan.expect(0).assert_no_secrets();
        let scan = scan.json();
        let ssids: Vec<&str> =
            scan["networks"].as_array().unwrap().iter().map(|n| n["ssid"].as_str().unwrap()).collect();
        assert_eq!(ssids, ["home", "office", "flaky", "cafe", "attic"], "{name}");
        assert_eq!(
            scan["networks"][0],
            serde_json::json!({"ssid": "home", "bssid": "02:00:00:00:00:01", "channel": 6, "rssi": -40, "auth": "wpa2-psk"})
        );
        let table = run(&["scan"]).await;
        table.expect(0);
        let lines: Vec<&str> = table.stdout.lines().collect();
        assert_eq!(lines[0], "SSID    BSSID              CH  RSSI  SECURITY");
        assert_eq!(lines[1], "home    02:00:00:00:00:01   6   -40  wpa2-psk");
        assert_eq!(lines.len(), 6);

        // status before provisioning.
        let status = run(&["status", "--json"]).await;
        status.expect(0);
        assert_eq!(status.json()["state"], "disconnected", "{name}: {status:?}");

        let provision = run(&["provision", "--ssid", "home", "--passphrase", PASSPHRASE]).await;
        provision.expect(0);

        let status = run(&["status", "--json"]).await;
        status.expect(0).assert_no_secrets();
        let status = status.json();
        assert_eq!(status["state"], "connected");
        assert_eq!(status["ssid"], "home");
        assert_eq!(status["ip"], "10.0.0.10");
        assert_eq!(status["channel"], 6);
        let text = run(&["status"]).await;
        assert!(text.stdout.starts_with("connected to \"home\"\n  ip address:  10.0.0.10\n"), "{}", text.stdout);

        // After success a reset is refused by the device (exit 1); reprov is accepted.
        let reset = run(&["reset", "--json"]).await;
        reset.expect(1);
        assert_eq!(reset.json()["error"]["kind"], "device_failure");
        assert!(reset.stderr.contains("refused the reset"), "{}", reset.stderr);
        let reprov = run(&["reprov", "--json"]).await;
        reprov.expect(0);
        assert_eq!(reprov.json()["action"], "reprov");
        let status = run(&["status", "--json"]).await;
        assert_eq!(status.json()["state"], "disconnected", "{status:?}");

        // custom endpoint: text and hex.
        let custom = run(&["custom", "custom-data", "hello"]).await;
        custom.expect(0);
        assert_eq!(custom.stdout, "got:hello\n");
        let custom = run(&["custom", "custom-data", "00ff", "--hex"]).await;
        custom.expect(0);
        assert_eq!(custom.stdout, format!("{}00ff\n", hex::encode("got:")));
        let custom = run(&["custom", "custom-data", "hi", "--json"]).await;
        assert_eq!(custom.json()["reply"], "got:hi");
        assert_eq!(custom.json()["reply_hex"], hex::encode("got:hi"));
        let custom = run(&["custom", "custom-data", "zz", "--hex"]).await;
        custom.expect(2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_then_reset_then_success() {
    let daemon = Daemon::start(sec1(), persistent()).await;
    let args = |extra: &[&str]| cat(&[&daemon.args(), &s(extra)]);
    let run = wifiprov(&args(&["provision", "--ssid", "home", "--passphrase", "wrong-horse"])).await;
    run.expect(6);
    assert!(run.stdout.contains("wrong passphrase"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!("next: check the passphrase, then run `wifiprov --device {} reset`", daemon.addr))
    );
    // The failure sticks until a reset.
    let status = wifiprov(&args(&["status", "--json"])).await;
    status.expect(6);
    assert_eq!(status.json()["state"], "failed");
    wifiprov(&args(&["reset"])).await.expect(0);
    wifiprov(&args(&["provision", "--ssid", "home", "--passphrase", PASSPHRASE])).await.expect(0);
}
