//! The harness itself, on the stable toolchain: its framing and random source, the golden data it loads, and
//! every committed seed replayed through its target (the seeds must pass the targets' assertions, or the
//! fuzzer would report them as crashes on its first run).

use std::path::PathBuf;

use wifiprov_fuzz::golden::golden;
use wifiprov_fuzz::input::{Builder, Input};
use wifiprov_fuzz::rng::FuzzRng;
use wifiprov_proto::rng::{RandomUnavailable, SecureRandom};

#[test]
fn records_round_trip_and_truncation_is_tolerated() {
    let bytes = Builder::new(&[1, 2]).record(7, b"abc").record(9, b"").finish();
    let mut input = Input::new(&bytes);
    assert_eq!(input.u16(), 0x0201);
    assert_eq!(input.record(), Some((7, &b"abc"[..])));
    assert_eq!(input.record(), Some((9, &b""[..])));
    assert_eq!(input.record(), None);
    let mut cut = Input::new(&[5, 10, 0, b'x']);
    assert_eq!(cut.record(), Some((5, &b"x"[..])));
    assert_eq!(Input::new(&[]).u64(), 0);
}

#[test]
fn random_source_is_scripted_then_reproducible_then_fails() {
    let mut a = FuzzRng::new(7, Some(20));
    a.queue(&[1, 2, 3]);
    let mut first = [0u8; 4];
    a.fill(&mut first).unwrap();
    assert_eq!(first[..3], [1, 2, 3]);
    let mut b = FuzzRng::new(7, None);
    let mut other = [0u8; 4];
    b.fill(&mut other).unwrap();
    assert_eq!(first[3], other[3]);
    assert!(a.fill(&mut [0u8; 16]).is_ok());
    assert_eq!(a.fill(&mut [0u8; 1]), Err(RandomUnavailable));
}

#[test]
fn every_golden_profile_has_a_two_step_handshake() {
    let g = golden();
    assert_eq!(g.sec1.len(), 2);
    assert_eq!(g.sec2.len(), 5);
    for p in &g.sec1 {
        assert_eq!(p.handshake.len(), 2, "{}", p.name);
        assert_eq!(p.device_draws.len(), 48, "{}", p.name);
    }
    for p in &g.sec2 {
        assert_eq!(p.handshake.len(), 2, "{}", p.name);
        assert!(p.handshake.iter().all(|s| s.response.is_some()), "{}", p.name);
    }
    assert!(g.transcripts.len() >= 12);
}

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        run(&data);
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

macro_rules! corpus {
    ($($name:ident => $run:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            replay(stringify!($name), $run);
        }
    )*};
}

corpus! {
    session_sec0 => |d| wifiprov_fuzz::session::run(wifiprov_fuzz::session::Scheme::Sec0, d),
    session_sec1 => |d| wifiprov_fuzz::session::run(wifiprov_fuzz::session::Scheme::Sec1, d),
    session_sec2 => |d| wifiprov_fuzz::session::run(wifiprov_fuzz::session::Scheme::Sec2, d),
    protocomm => wifiprov_fuzz::protocomm::run,
    messages => wifiprov_fuzz::messages::run,
    custom_endpoint => wifiprov_fuzz::custom::run,
    store_load => wifiprov_fuzz::store::run,
    proto_ver => wifiprov_fuzz::version::run,
    client => wifiprov_fuzz::client::run,
    http_head => wifiprov_fuzz::http::run,
}
