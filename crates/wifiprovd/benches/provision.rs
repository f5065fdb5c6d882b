//! One full security 2 provisioning round over loopback HTTP: connect, proto-ver, SRP handshake, SetConfig,
//! ApplyConfig, status polls until Connected, then a reprovision request so the next round can start.
//! The simulated radio joins instantly and the connect delay is zero, so the figure is the stack's own cost.
//!
//! Baseline in the same run: the bare sec2 handshake in memory (device and client, no transport), the
//! cryptographic floor of any provisioning round. After criterion, the CPU time of the whole process per
//! round is printed (from /proc/self/stat).

mod common;

use std::time::Duration;

use common::{client_security, device, security};
use criterion::{Criterion, criterion_group, criterion_main};
use wifiprov_client::{Client, HttpClient, PollPolicy, ProvisionOutcome};
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::security::{ClientSession, DeviceSession};
use wifiprov_testkit::SeededRandom;

const SCENARIO: &str = r#"
scan_duration_ms = 0
join_latency_ms = 0
[[ap]]
ssid = "bench"
bssid = "02:00:00:00:00:01"
channel = 6
rssi = -40
auth = "wpa2-psk"
passphrase = "bench-passphrase"
"#;

async fn round(addr: std::net::SocketAddr, rng: &mut SeededRandom) {
    let poll = PollPolicy { initial: Duration::ZERO, max: Duration::from_millis(1), deadline: Duration::from_secs(10) };
    let mut client = Client::new(HttpClient::connect(addr).await.expect("connect"));
    client.version().await.expect("version");
    client.establish(client_security(), rng).await.expect("session");
    let outcome = client.provision(b"bench", b"bench-passphrase", poll, |_| {}).await.expect("provision");
    assert!(matches!(outcome, ProvisionOutcome::Connected(_)));
    client.reprov().await.expect("reprov");
}

fn cpu_seconds() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let manager =
        ManagerConfig { connect_delay: Duration::ZERO, auto_stop: AutoStop::Disabled, ..ManagerConfig::default() };
    let (service, addr) = runtime.block_on(device(SCENARIO, manager, dir.path()));

    let device = security();
    let mut group = c.benchmark_group("provision");
    group.bench_function("baseline: sec2 handshake in memory", |b| {
        let mut rng = SeededRandom::new(2);
        b.iter(|| {
            let mut d = DeviceSession::new(&device);
            let mut c = ClientSession::new(client_security());
            let mut request = c.start(&mut rng).expect("start");
            while let Some(next) = {
                let response = d.handle_handshake(&request, &mut rng).expect("device");
                c.handle_response(&response, &mut rng).expect("client")
            } {
                request = next;
            }
        })
    });
    group.bench_function("sec2 round over loopback", |b| {
        let mut rng = SeededRandom::new(3);
        b.iter(|| runtime.block_on(round(addr, &mut rng)))
    });
    group.finish();

    // `cargo test --all-targets` runs benchmarks once as a smoke test; the CPU figure is only for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = 100;
    let mut rng = SeededRandom::new(4);
    let (cpu, wall) = (cpu_seconds(), std::time::Instant::now());
    for _ in 0..rounds {
        runtime.block_on(round(addr, &mut rng));
    }
    let cpu = (cpu_seconds() - cpu) / f64::from(rounds);
    let wall = wall.elapsed().as_secs_f64() / f64::from(rounds);
    println!(
        "provision/cpu per round (client + daemon, {rounds} rounds): {:.2} ms; wall {:.2} ms",
        cpu * 1e3,
        wall * 1e3
    );
    drop(service);
}

criterion_group!(benches, bench);
criterion_main!(benches);
