//! Fleet mode: several daemons at once, one with a wrong passphrase, one address with nothing listening.

use wifiprov_proto::danger;
use wifiprov_proto::security::Sec2Patch;

use crate::common::{Daemon, PASSPHRASE, PASSWORD, POP, USER, dead_address, fast_manager, s, sec1, sec2, wifiprov};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_reports_every_device_and_exits_1_when_one_fails() {
    let good_sec1 = Daemon::start(sec1(), fast_manager()).await;
    let good_sec2 = Daemon::start(sec2(Sec2Patch::Counter), fast_manager()).await;
    let wrong_pass = Daemon::start(sec2(Sec2Patch::Legacy), fast_manager()).await;
    let dead = dead_address().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[device]]
device = "{good_sec1}"
ssid = "home"
passphrase = "{PASSPHRASE}"
pop = "{POP}"

[[device]]
device = "{good_sec2}"
ssid = "office"
passphrase = "office-secret"
security = 2
sec2_username = "{USER}"
sec2_password = "{PASSWORD}"

[[device]]
device = "{wrong_pass}"
ssid = "home"
passphrase = "not-the-passphrase"
sec2_password = "{PASSWORD}"

[[device]]
device = "{dead}"
ssid = "home"
passphrase = "{PASSPHRASE}"
pop = "{POP}"
"#,
            good_sec1 = good_sec1.addr,
            good_sec2 = good_sec2.addr,
            wrong_pass = wrong_pass.addr,
        ),
    )
    .unwrap();
    let args = s(&["fleet", file.to_str().unwrap(), "--concurrency", "3", "--retries", "1", "--json"]);
    let run = wifiprov(&args).await;
    run.expect(1).assert_no_secrets();
    assert!(!run.stdout.contains("not-the-passphrase"));
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["succeeded"], 2);
    assert_eq!(report["failed"], 2);
    let devices = report["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 4);
    let fields: Vec<&str> = devices[0].as_object().unwrap().keys().map(String::as_str).collect();
    for key in ["device", "ok", "outcome", "ip", "error", "attempts", "elapsed_ms"] {
        assert!(fields.contains(&key), "{key} in {fields:?}");
    }
    // In file order, whatever order they finished in.
    assert_eq!(devices[0]["device"], good_sec1.addr.to_string());
    assert_eq!(devices[0]["ok"], true);
    assert_eq!(devices[0]["outcome"], "connected");
    assert_eq!(devices[0]["ip"], "10.0.0.10");
    assert_eq!(devices[0]["attempts"], 1);
    assert!(devices[0]["error"].is_null());
    assert_eq!(devices[1]["outcome"], "connected");
    assert_eq!(devices[1]["ip"], "10.0.0.12", "office is the third access point of the scenario");
    assert_eq!(devices[2]["ok"], false);
    assert_eq!(devices[2]["outcome"], "auth_error");
    assert!(devices[2]["error"].as_str().unwrap().contains("wrong passphrase"));
    assert_eq!(devices[2]["attempts"], 1, "a device failure is not retried");
    assert_eq!(devices[3]["device"], dead.to_string());
    assert_eq!(devices[3]["outcome"], "transport_error");
    assert_eq!(devices[3]["attempts"], 2, "a transport failure is retried once");
    assert!(devices[3]["error"].as_str().unwrap().starts_with(&format!("cannot reach {dead}")));
    assert!(devices.iter().all(|d| d["elapsed_ms"].as_u64().is_some()));

    // The same run as text: a table on stdout.
    let sec0 = Daemon::start(danger::sec0(), fast_manager()).await;
    let csv = dir.path().join("devices.csv");
    let text = format!("device,ssid,passphrase,pop\n{dead},home,{PASSPHRASE},{POP}\n\"{}\",cafe,,\n", sec0.addr);
    std::fs::write(&csv, text).unwrap();
    let run = wifiprov(&s(&["fleet", csv.to_str().unwrap(), "--retries", "0"])).await;
    run.expect(1).assert_no_secrets();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("DEVICE") && lines[0].contains("RESULT"), "{}", run.stdout);
    assert!(lines[1].contains("transport_error"), "{}", run.stdout);
    assert!(lines[2].contains("connected") && lines[2].contains("10.0.0.11"), "{}", run.stdout);
    assert_eq!(lines.last().unwrap(), &"1 succeeded, 1 failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_exits_0_when_all_connect_with_global_credentials() {
    let a = Daemon::start(sec1(), fast_manager()).await;
    let b = Daemon::start(sec1(), fast_manager()).await;
    let c = Daemon::start(sec1(), fast_manager()).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    let mut text = String::from("device, ssid, passphrase\n");
    for daemon in [&a, &b, &c] {
        text.push_str(&format!("{}, home, {PASSPHRASE}\n", daemon.addr));
    }
    std::fs::write(&csv, text).unwrap();
    // The PoP comes from the global option for every device.
    let run = wifiprov(&s(&["--pop", POP, "fleet", csv.to_str().unwrap(), "--concurrency", "2", "--json"])).await;
    run.expect(0).assert_no_secrets();
    let report = run.json();
    assert_eq!(report["succeeded"], 3);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["ok"], true);

    // A malformed file is a usage error that names the line.
    std::fs::write(&csv, "device,ssid\n127.0.0.1:1\n").unwrap();
    let run = wifiprov(&s(&["fleet", csv.to_str().unwrap()])).await;
    run.expect(2);
    assert!(run.stderr.contains("line 2"), "{}", run.stderr);
}
