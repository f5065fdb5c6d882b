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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wifiprov_backend_sim::SimRadio;
use wifiprov_client::{Client, HttpClient, PollPolicy, ProvisionOutcome};
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::secret::Password;
use wifiprov_proto::security::{
    ClientSecurity, ClientSession, DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier,
};
use wifiprov_store::NetworkStore;
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::attack::{self, Attack};
use wifiprov_transport_http::HttpConfig;
use wifiprovd::frontend::{Frontend, HttpFrontend};
use wifiprovd::service::{ProvisioningService, ServiceConfig};

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn security() -> DeviceSecurity {
    let creds = generate_salt_verifier(b"wifiprov", &Password::from("abcd1234"), 16, &mut SeededRandom::new(1))
        .expect("credentials");
    DeviceSecurity::sec2(
        Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).expect("verifier")),
        Sec2Patch::Counter,
    )
}

fn client_security() -> ClientSecurity {
    ClientSecurity::sec2("wifiprov", Password::from("abcd1234"), Sec2Patch::Counter)
}

async fn device(connect_delay: Duration, dir: &std::path::Path) -> (ProvisioningService, SocketAddr) {
    let manager = ManagerConfig { connect_delay, auto_stop: AutoStop::Disabled, ..ManagerConfig::default() };
    let radio = SimRadio::from_toml_str(wifiprov_testkit::FAST_SCENARIO).expect("scenario");
    let service = ProvisioningService::new(
        ServiceConfig { manager, ..ServiceConfig::default() },
        Arc::new(radio),
        NetworkStore::open(dir),
    )
    .expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let http: Vec<Arc<dyn Frontend>> =
        vec![Arc::new(HttpFrontend::bound(listener, HttpConfig::default()).expect("listener"))];
    service.start_provisioning(security(), http).await.expect("start");
    (service, addr)
}

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

fn attacks() -> Vec<(&'static str, Attack, usize)> {
    let command0 = ClientSession::new(client_security()).start(&mut SeededRandom::new(77)).expect("command0");
    vec![
        ("200 slow-drip connections", Attack::SlowDrip { connections: 200, interval: Duration::from_millis(100) }, 32),
        ("32 idle connections", Attack::Idle { connections: 32 }, 32),
        (
            "32 connections sending blank lines",
            Attack::BlankLines { connections: 32, interval: Duration::from_millis(50) },
            32,
        ),
        ("loop of cookie-less proto-ver", Attack::ProtoVerLoop { connections: 2 }, 2),
        ("16 handshakes abandoned after Command0", Attack::AbandonedHandshakes { connections: 16, command0 }, 16),
    ]
}

async fn measure(connect_delay: Duration, rounds: usize, attacks: Vec<(&'static str, Attack, usize)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, addr) = device(connect_delay, dir.path()).await;
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
    for (name, attack, connections) in attacks {
        let running = attack::launch(attack, addr, ATTACKER);
        assert!(running.wait_connected(connections, Duration::from_secs(20)).await, "{name}: not in place");
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
        let smoke =
            attacks().into_iter().take(1).map(|(n, _, c)| (n, Attack::Idle { connections: 4 }, c.min(4))).collect();
        runtime.block_on(measure(Duration::ZERO, 1, smoke));
        return;
    }
    for delay in [Duration::from_secs(1), Duration::ZERO] {
        runtime.block_on(measure(delay, 9, attacks()));
    }
}
