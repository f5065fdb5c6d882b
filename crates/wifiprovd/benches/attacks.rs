//! Provisioning time under attack, next to the same provisioning without one, in the same run.
//!
//! A daemon (security 2, HTTP on loopback, the fast simulated radio) serves a legitimate client that provisions
//! round after round (new connection, proto-ver, SRP handshake, set, apply, status polls until connected,
//! reprovision). Each attack of `wifiprov_testkit::attack` runs from another loopback address (127.0.0.2) while
//! the client measures its rounds; the baseline is the same rounds with no attack, measured first and again at
//! the end. Two device timings: ESP's 1 s connect delay (what a user sees), and no delay (the stack's own cost,
//! where an attack's CPU shows most).
//!
//! `cargo bench -p wifiprovd --bench attacks` prints a table of medians and ratios. Under `cargo test` it runs
//! one short round of one attack as a smoke test.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{client_security, device};
use wifiprov_client::{Client, HttpClient, PollPolicy, ProvisionOutcome};
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::security::ClientSession;
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::attack::{Attack, LockoutAttempt, lockout_attempts};
use wifiprov_transport_http::HttpConfig;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// One provisioning round as a phone app does it; how long it took until the client saw Connected.
async fn round(addr: SocketAddr, seed: u64) -> Duration {
    let poll = PollPolicy {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
        deadline: Duration::from_secs(60),
    };
    let started = Instant::now();
    let mut client = Client::new(HttpClient::connect(addr).await.expect("connect"));
    client.version().await.expect("version");
    client.establish(client_security(), &mut SeededRandom::new(seed)).await.expect("session");
    let outcome = client.provision(b"home", b"correct-horse", poll, |_| {}).await.expect("provision");
    assert!(matches!(outcome, ProvisionOutcome::Connected(_)));
    let took = started.elapsed();
    client.reprov().await.expect("reprov");
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn attacks() -> Vec<LockoutAttempt> {
    lockout_attempts(ClientSession::new(client_security()).start(&mut SeededRandom::new(77)).expect("command0"))
}

async fn measure(connect_delay: Duration, rounds: usize, attacks: Vec<LockoutAttempt>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let manager = ManagerConfig { connect_delay, auto_stop: AutoStop::Disabled, ..ManagerConfig::default() };
    let (service, addr) = device(wifiprov_testkit::FAST_SCENARIO, manager, dir.path()).await;
    let mut seed = 1000;
    let mut rounds_of = |addr| {
        seed += 100;
        let start = seed;
        async move {
            let mut samples = Vec::new();
            for i in 0..rounds {
                samples.push(round(addr, start + i as u64).await);
            }
            median(samples)
        }
    };
    let before = rounds_of(addr).await;
    let mut rows = Vec::new();
    for attempt in attacks {
        let name = attempt.name;
        let slots = HttpConfig::default().max_connections;
        let running = attempt.launch(addr, ATTACKER, slots, Duration::from_secs(20)).await.expect("attack in place");
        let took = rounds_of(addr).await;
        let stats = running.stop().await;
        rows.push((name, took, stats));
    }
    let after = rounds_of(addr).await;
    let baseline = before.max(after);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\nconnect delay {connect_delay:?}, median of {rounds} rounds each");
    println!("{:<42} {:>10} {:>8}  attacker", "", "round ms", "ratio");
    println!("{:<42} {:>10.1} {:>8}", "no attack (before)", ms(before), "");
    for (name, took, stats) in rows {
        let ratio = took.as_secs_f64() / baseline.as_secs_f64();
        println!(
            "{name:<42} {:>10.1} {ratio:>7.2}x  {} connections, {} answers",
            ms(took),
            stats.connections,
            stats.answers
        );
    }
    println!("{:<42} {:>10.1} {:>8}", "no attack (after)", ms(after), "");
    service.deinit().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets`: one short round of one attack, to keep the benchmark working.
        let smoke = vec![LockoutAttempt { name: "4 idle connections", attack: Attack::Idle { connections: 4 } }];
        runtime.block_on(measure(Duration::ZERO, 1, smoke));
        return;
    }
    for delay in [Duration::from_secs(1), Duration::ZERO] {
        runtime.block_on(measure(delay, 9, attacks()));
    }
}
