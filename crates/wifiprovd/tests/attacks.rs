//! A legitimate provisioning held to a deadline while an attacker in radio range (here: another loopback
//! address, 127.0.0.2) tries to lock everyone out without a credential: slow request heads, idle connections,
//! blank lines, a flood of session-less requests, handshakes abandoned after their first message.
//!
//! The deadline is twice the same provisioning's time without an attack, measured in the same test. The device
//! runs with ESP's own connect delay (1 s between ApplyConfig and the join), so the unloaded time is dominated by
//! the protocol's own pacing rather than by this machine's speed, and a lockout (a connection slot or a session
//! held until a timeout of 10 s or more) cannot hide inside the margin. The figures themselves are measured by
//! the `attacks` benchmark, not here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use wifiprov_client::{Client, HttpClient, PollPolicy, ProvisionOutcome};
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::security::{ClientSession, Sec2Patch};
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::attack::lockout_attempts;
use wifiprov_transport_http::HttpConfig;

use crate::common::{Setup, client_security, rand_seed, sec2, start};

/// Where the attacker connects from.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn esp_timing() -> ManagerConfig {
    // ESP's connect delay; provisioning stays open so one device serves every round.
    ManagerConfig { auto_stop: AutoStop::Disabled, ..ManagerConfig::default() }
}

fn poll() -> PollPolicy {
    PollPolicy { initial: Duration::from_millis(20), max: Duration::from_millis(50), deadline: Duration::from_secs(60) }
}

/// One whole provisioning as a phone app does it, on a new connection: version, security 2 handshake, set,
/// apply, status until connected; then a reprovision so the next round starts afresh. Returns how long it took.
async fn provision(addr: SocketAddr) -> (Duration, String) {
    let started = Instant::now();
    let mut client = Client::new(HttpClient::connect(addr).await.expect("connect"));
    let connected = started.elapsed();
    client.version().await.expect("proto-ver");
    let security = client_security(&sec2(Sec2Patch::Counter));
    client.establish(security, &mut SeededRandom::new(rand_seed())).await.expect("handshake");
    let established = started.elapsed();
    let mut polls = Vec::new();
    let outcome = client
        .provision(b"home", b"correct-horse", poll(), |r| polls.push((started.elapsed(), format!("{:?}", r.state))))
        .await
        .expect("provision");
    assert!(matches!(outcome, ProvisionOutcome::Connected(_)), "{outcome:?}");
    let took = started.elapsed();
    let timing = format!("connect {connected:?} established {established:?} took {took:?} polls {polls:?}");
    client.reprov().await.expect("reprov");
    (took, timing)
}

/// A security 2 Command0, as an attacker would send to open a session.
fn command0() -> Vec<u8> {
    ClientSession::new(client_security(&sec2(Sec2Patch::Counter))).start(&mut SeededRandom::new(77)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legitimate_provisioning_keeps_its_deadline_under_each_attack() {
    let daemon = start(sec2(Sec2Patch::Counter), Setup { manager: esp_timing(), ..Setup::default() }).await;
    // The slowest of three unloaded rounds: the deadline must not hinge on one lucky round.
    let mut unloaded = Duration::ZERO;
    for _ in 0..3 {
        unloaded = unloaded.max(provision(daemon.addr).await.0);
    }
    let deadline = unloaded * 2;
    let mut report = vec![format!("unloaded: {unloaded:?}")];
    for attempt in lockout_attempts(command0()) {
        let name = attempt.name;
        let running = attempt
            .launch(daemon.addr, ATTACKER, HttpConfig::default().max_connections, Duration::from_secs(20))
            .await
            .unwrap_or_else(|stats| panic!("{name}: attack never in place: {stats:?}"));
        let (took, timing) = tokio::time::timeout(deadline * 5, provision(daemon.addr))
            .await
            .unwrap_or_else(|_| panic!("{name}: locked out ({report:?})"));
        let stats = running.stop().await;
        report.push(format!("{name}: {took:?} ({stats:?}) {timing}"));
        assert!(took <= deadline, "{name}: {took:?} is more than twice the unloaded {unloaded:?}\n{report:#?}");
    }
}
