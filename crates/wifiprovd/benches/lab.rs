//! Joining a real network in the radio lab (tests/lab/README.md): how long provisioning takes as a client sees it
//! (`wifiprov provision`: session, ApplyConfig, status polls until Connected) against NetworkManager's own
//! `nmcli device wifi connect` to the same access point, in the same guest and run, alternating round by round.
//!
//! `cargo bench -p wifiprovd --bench lab` boots the guest (about a minute) and prints one line per round and a
//! summary: medians, and wifiprov's median as a ratio of nmcli's. `WIFIPROV_LAB_BENCH_ROUNDS` sets the rounds
//! (default 5). Both sides start from a disconnected station that knows the access point from a scan.
//!
//! Then, with no saved network, how soon provisioning is reachable: from `wifiprovd --transport softap` starting
//! to the daemon serving on its access point, and to a phone (wpa_supplicant, started at the same moment and
//! scanning) having joined it. Under `cargo test --all-targets` it runs one round of each, to keep the benchmark
//! working.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wifiprov_testkit::harness;
use wifiprov_testkit::lab::{self, Boot, GUEST_ROLE, Lab, Phone};
use wifiprov_testkit::process::{Process, Stream};

const POP: &str = "lab-bench-pop";
const AP_NAME: &str = "PROV_BENCH";
const AP_KEY: &str = "bench-service-key";
const LIMIT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    match harness::role().as_deref() {
        Some(GUEST_ROLE) => lab::run_cases(&[("join_time", join_time), ("softap_start", softap_start)]),
        Some(other) => panic!("unknown role {other}"),
        None => {
            // `cargo test --all-targets` runs benchmarks without `--bench`: one round, as a smoke test.
            let rounds = if std::env::args().any(|a| a == "--bench") {
                std::env::var("WIFIPROV_LAB_BENCH_ROUNDS").unwrap_or_else(|_| "5".into())
            } else {
                "1".into()
            };
            Boot::new(GUEST_ROLE)
                .env("WIFIPROV_LAB_BENCH_ROUNDS", &rounds)
                .timeout(Duration::from_secs(1800))
                .run()
                .assert_passed();
            ExitCode::SUCCESS
        }
    }
}

/// The rounds each case measures (`WIFIPROV_LAB_BENCH_ROUNDS`, which the host sets; 5 without it).
fn rounds() -> usize {
    std::env::var("WIFIPROV_LAB_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn disconnected(lab: &Lab) {
    let mut down = lab.device("nmcli");
    down.args(["device", "disconnect", lab.device_iface()]);
    // Fails harmlessly when it is not connected.
    lab.run("nmcli device disconnect", down, LIMIT);
    lab.wait_for_device_state("disconnected", LIMIT);
}

/// One wifiprov round: a fresh daemon (no saved network, so provisioning opens), then the timed client run.
/// Returns the client's time and, from the daemon's log, how long its radio took: from the backend's
/// connect to joined (NetworkManager's activation and DHCP, with our calls around it).
fn wifiprov_round(lab: &Lab, connect_delay_ms: &str) -> (f64, f64) {
    let state = tempfile::tempdir().unwrap();
    let mut command = lab.device(env!("CARGO_BIN_EXE_wifiprovd"));
    command
        .args(["--backend", "networkmanager", "--wifi-interface", lab.device_iface()])
        .args(["--listen", "127.0.0.1:0", "--security", "1", "--pop", POP, "--connect-delay-ms", connect_delay_ms])
        .arg("--state-dir")
        .arg(state.path());
    let daemon = Process::spawn("wifiprovd", command);
    let line = daemon
        .wait_for_line(Stream::Stdout, LIMIT, |l| l.starts_with("listening on "))
        .unwrap_or_else(|| panic!("wifiprovd does not serve\n{daemon}"));
    let addr = line.trim_start_matches("listening on ").trim().to_owned();

    let home = lab.ap(lab::HOME_NET);
    let mut client = lab.device(Path::new(env!("CARGO_BIN_EXE_wifiprovd")).with_file_name("wifiprov"));
    client.args(["--device", &addr, "--security", "1", "--pop", POP, "provision", "--ssid", &home.ssid]).args([
        "--passphrase",
        home.passphrase.as_deref().unwrap(),
        "--poll-interval",
        "100",
        "--json",
    ]);
    let began = Instant::now();
    let finished = lab.run("wifiprov provision", client, LIMIT);
    let took = began.elapsed().as_secs_f64();
    assert!(finished.status.success() && finished.stdout.contains("\"connected\""), "{finished}\n{daemon}");
    let log = daemon.output(Stream::Stderr);
    let at = |words: &[&str]| {
        log.lines()
            .find(|line| words.iter().all(|w| line.contains(w)))
            .and_then(seconds_of_day)
            .unwrap_or_else(|| panic!("the daemon never logged {words:?}\n{log}"))
    };
    let radio = at(&["wifiprov_backend_nm", " joined "]) - at(&["wifiprov_service::radio", "connecting"]);
    drop(daemon);
    disconnected(lab);
    (took, radio)
}

/// The time of day of a log line (`2026-12-02T14:10:47.618957Z  INFO …`), in seconds.
fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.get(11..26)?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// One NetworkManager round: `nmcli device wifi connect`. Returns when nmcli returned, and when the station had
/// an IPv4 address: nmcli's profile lets IPv4 fail (`ipv4.may-fail` yes), so NetworkManager may call it
/// activated before DHCP is done, where wifiprov waits for the address.
fn nmcli_round(lab: &Lab) -> (f64, f64) {
    let home = lab.ap(lab::HOME_NET);
    let mut connect = lab.device("nmcli");
    connect.args(["device", "wifi", "connect", &home.ssid, "password", home.passphrase.as_deref().unwrap()]);
    connect.args(["ifname", lab.device_iface()]);
    let began = Instant::now();
    lab.run_ok("nmcli device wifi connect", connect, LIMIT);
    let returned = began.elapsed().as_secs_f64();
    loop {
        if lab.device_ipv4().is_some() {
            break;
        }
        assert!(began.elapsed() < LIMIT, "no address after nmcli connected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let addressed = began.elapsed().as_secs_f64();
    lab.nmcli(&["connection", "delete", &home.ssid], LIMIT);
    disconnected(lab);
    (returned, addressed)
}

fn join_time(lab: &Lab) {
    let rounds = rounds();
    // Both sides find HomeNet in NetworkManager's list: scan once before the first round.
    lab.nmcli(&["device", "wifi", "list", "ifname", lab.device_iface(), "--rescan", "yes"], LIMIT);
    let (mut nm, mut nm_address, mut ours, mut ours_no_delay, mut radio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (a, a_address) = nmcli_round(lab);
        let (b, b_radio) = wifiprov_round(lab, "1000");
        let (c, c_radio) = wifiprov_round(lab, "0");
        println!(
            "bench round {round}: nmcli {a:.2}s (address {a_address:.2}s)  wifiprov {b:.2}s (radio {b_radio:.2}s)  \
             wifiprov, connect delay 0 {c:.2}s (radio {c_radio:.2}s)"
        );
        nm.push(a);
        nm_address.push(a_address);
        ours.push(b);
        ours_no_delay.push(c);
        radio.extend([b_radio, c_radio]);
    }
    let (a, a_address) = (median(nm), median(nm_address));
    let (b, c, r) = (median(ours), median(ours_no_delay), median(radio));
    println!(
        "bench median of {rounds}: nmcli {a:.2}s, to its address {a_address:.2}s; wifiprov {b:.2}s = {:.2}x; wifiprov \
         with connect delay 0 {c:.2}s = {:.2}x; the daemon's radio part (connect to joined) {r:.2}s = {:.2}x of \
         nmcli to its address",
        b / a,
        c / a,
        r / a_address
    );
}

/// One start-up round: a fresh daemon with the access point and no saved network, and a phone's supplicant
/// started at the same moment. Returns the seconds until the daemon serves on its access point and until the
/// phone has joined it.
fn softap_round(lab: &Lab) -> (f64, f64) {
    let state = tempfile::tempdir().unwrap();
    let mut command = lab.device(env!("CARGO_BIN_EXE_wifiprovd"));
    command
        .args(["--backend", "networkmanager", "--wifi-interface", lab.device_iface(), "--transport", "softap"])
        .args(["--service-name", AP_NAME, "--service-key", AP_KEY, "--security", "1", "--pop", POP])
        .arg("--state-dir")
        .arg(state.path());
    let began = Instant::now();
    let mut daemon = Process::spawn("wifiprovd", command);
    let phone = Phone::start(lab, AP_NAME, Some(AP_KEY));
    daemon
        .wait_for_line(Stream::Stdout, LIMIT, |l| l.starts_with("listening on 192.168.4.1:80"))
        .unwrap_or_else(|| panic!("wifiprovd does not serve on its access point\n{daemon}"));
    let serving = began.elapsed().as_secs_f64();
    phone.wait_joined(lab, LIMIT);
    let joined = began.elapsed().as_secs_f64();
    drop(phone);
    // Stopped as systemd does, so that it takes its access point and interface down.
    let mut term = lab.device("kill");
    term.args(["-TERM", &daemon.id().to_string()]);
    lab.run_ok("kill -TERM wifiprovd", term, LIMIT);
    assert!(daemon.wait(LIMIT).is_some_and(|status| status.success()), "wifiprovd did not stop\n{daemon}");
    (serving, joined)
}

fn softap_start(lab: &Lab) {
    let rounds = rounds();
    let (mut serving, mut joined) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (a, b) = softap_round(lab);
        println!("bench softap round {round}: serving on its access point {a:.2}s, phone joined {b:.2}s");
        serving.push(a);
        joined.push(b);
    }
    println!(
        "bench softap median of {rounds}: start to serving {:.2}s, start to a phone joined {:.2}s",
        median(serving),
        median(joined)
    );
}
