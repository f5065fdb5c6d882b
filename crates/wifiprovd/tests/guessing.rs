//! The online-guessing limit on the real daemon: wrong proofs lock handshakes out for doubling waits, the
//! client is told for how long, the count survives a restart, and the right proof works once the wait is over.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wifiprov_client::{Client, HttpClient};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::ClientSecurity;
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::process::{Process, Stream};

const POP: &str = "right-pop-5521";

fn start(state: &Path, backoff_secs: u64) -> (Process, std::net::SocketAddr) {
    let config = state.with_extension("toml");
    std::fs::write(&config, format!("security = 1\npop = \"{POP}\"\nguess_backoff_secs = {backoff_secs}\n")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wifiprovd"));
    command.arg("--config").arg(&config).args(["--listen", "127.0.0.1:0", "--state-dir"]).arg(state);
    command.env("RUST_LOG", "info");
    let daemon = Process::spawn("wifiprovd", command);
    let line = daemon.wait_for_line(Stream::Stdout, Duration::from_secs(20), |l| l.starts_with("listening on "));
    let addr = line.and_then(|l| l.strip_prefix("listening on ").and_then(|a| a.parse().ok()));
    let addr = addr.unwrap_or_else(|| panic!("no address\n{daemon}"));
    (daemon, addr)
}

/// One handshake with `pop`: `Ok` when established, else the error as the client shows it.
async fn guess(addr: std::net::SocketAddr, pop: &str) -> Result<(), String> {
    let mut client = Client::new(HttpClient::connect(addr).await.unwrap());
    let security = ClientSecurity::sec1(ProofOfPossession::from(pop));
    client.establish(security, &mut SeededRandom::new(9)).await.map_err(|e| ErrorChain(&e).to_string())
}

fn failed_proofs(state: &Path) -> u32 {
    wifiprov_store::Counter::open(state, wifiprovd::guessing::FILE_NAME).unwrap().load().unwrap()
}

fn stop(mut daemon: Process) -> String {
    assert!(Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap().success());
    assert!(daemon.wait(Duration::from_secs(30)).is_some_and(|s| s.success()), "{daemon}");
    daemon.output(Stream::Stderr)
}

#[tokio::test]
async fn five_wrong_proofs_lock_handshakes_out_and_a_restart_does_not_unlock_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (daemon, addr) = start(&state, 600);
    for n in 1..=5 {
        let refused = guess(addr, "wrong-pop").await.unwrap_err();
        assert!(!refused.contains("locked"), "guess {n} is answered: {refused}");
    }
    // Even the right PoP is refused now, at once, and the client is told for how long.
    let locked = guess(addr, POP).await.unwrap_err();
    assert!(locked.contains("locked for 600 s"), "{locked}");
    let log = stop(daemon);
    assert_eq!(log.matches("refusing handshakes for 600 s").count(), 1, "one line per lockout:\n{log}");
    assert_eq!(failed_proofs(&state), 5);

    // A power cycle resets nothing: the restarted daemon waits again, from its start.
    let (daemon, addr) = start(&state, 600);
    let locked = guess(addr, POP).await.unwrap_err();
    assert!(locked.contains("locked for 600 s") || locked.contains("locked for 599 s"), "{locked}");
    let log = stop(daemon);
    assert!(log.contains("refusing handshakes for 600 s"), "{log}");
}

#[tokio::test]
async fn the_right_proof_succeeds_once_the_wait_is_over_and_forgives_the_failures() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (daemon, addr) = start(&state, 1);
    for _ in 1..=5 {
        guess(addr, "wrong-pop").await.unwrap_err();
    }
    let locked = guess(addr, POP).await.unwrap_err();
    assert!(locked.contains("locked for 1 s"), "{locked}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    guess(addr, POP).await.unwrap();
    assert_eq!(failed_proofs(&state), 0);
    stop(daemon);
}

/// The target, on the live daemon with the default limit: a guesser retrying as fast as it can gets at
/// most 10 verdicts on its guesses in a minute. Run for 20 s (10 verdicts by 15 s, the 11th not before 31 s
/// with the default 5 free failures and a 1 s doubling wait), then the count is checked against the schedule.
#[tokio::test]
async fn a_guesser_gets_no_more_than_ten_verdicts_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("default.toml");
    std::fs::write(&config, format!("security = 1\npop = \"{POP}\"\n")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wifiprovd"));
    command.arg("--config").arg(&config).args(["--listen", "127.0.0.1:0", "--state-dir"]).arg(&state);
    let daemon = Process::spawn("wifiprovd", command);
    let line = daemon.wait_for_line(Stream::Stdout, Duration::from_secs(20), |l| l.starts_with("listening on "));
    let addr: std::net::SocketAddr = line.and_then(|l| l.strip_prefix("listening on ")?.parse().ok()).unwrap();

    let start = Instant::now();
    let (mut verdicts, mut refusals) = (0, 0);
    while start.elapsed() < Duration::from_secs(20) {
        match guess(addr, "wrong-pop").await {
            Ok(()) => panic!("a wrong PoP was accepted"),
            Err(e) if e.contains("locked for") => refusals += 1,
            Err(_) => verdicts += 1,
        }
    }
    assert!(verdicts <= 10, "{verdicts} guesses answered in 20 s");
    assert!(verdicts >= 5, "the free failures are answered: {verdicts}");
    assert!(refusals > 100, "the guesser kept trying: {refusals} refusals");
    stop(daemon);
}
