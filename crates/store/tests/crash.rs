//! Kill a process that saves in a loop with SIGKILL at random moments, hundreds of times, and check that the
//! store always holds exactly the last acknowledged list or the one after it.
//!
//! Each run spawns `store-crash-writer`, which continues from whatever generation is on disk, saves the next
//! generations one after another, and prints `acked <n>` after each save returns. After a random delay the
//! test sends SIGKILL, then loads the store itself. The delays (0 to 20 ms, from a seeded PRNG) cover the
//! writer's start-up and many points inside its saves. Set `WIFIPROV_CRASH_SEED` to replay a failing run.
//!
//! A process kill does not drop the page cache, so this shows that no interleaving of the writer's steps with
//! its death leaves a torn or stale file; the `fsync` calls that protect against power cuts are exercised by
//! the unit tests only as steps, not by cutting power.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wifiprov_proto::ErrorChain;
use wifiprov_store::NetworkStore;

#[path = "../src/bin/store-crash-writer/lists.rs"]
mod lists;

const RUNS: u32 = 250;
const MAX_DELAY_MICROS: u64 = 20_000;
const DEFAULT_SEED: u64 = 0x5eed_c4a5;
const SIGKILL: i32 = 9;

/// SplitMix64: small, seedable, good enough to spread delays.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn up_to(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// Kills and reaps the writer if the test fails before it does.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The generation in the last complete `acked <n>` line.
fn last_acked(stdout: &str) -> Option<u64> {
    stdout
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .rev()
        .find_map(|line| line.trim_end().strip_prefix("acked ")?.parse().ok())
}

#[derive(Debug, Default)]
struct Stats {
    /// Runs killed before the first save of the run returned.
    no_ack: u32,
    /// Runs where the store held a list that was saved but not yet acknowledged (killed between rename and
    /// the `acked` line).
    unacked_new: u32,
    /// Runs that left a temporary file behind (killed inside a save, before its rename).
    stale_temp: u32,
    /// Saves acknowledged over all runs.
    acked_saves: u64,
}

#[test]
fn sigkill_at_random_points_leaves_the_old_or_the_new_list() {
    let seed = std::env::var("WIFIPROV_CRASH_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_SEED);
    let mut prng = Prng(seed);
    let root = tempfile::Builder::new().prefix("crash-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = root.path().join("store");
    let store = NetworkStore::open(&dir);
    let temp = dir.join(".networks.json.tmp");
    let started = Instant::now();
    let mut generation = 0;
    let mut stats = Stats::default();

    for run in 0..RUNS {
        let delay = Duration::from_micros(prng.up_to(MAX_DELAY_MICROS));
        let context = format!("run {run} (seed {seed}, kill after {delay:?}, stored generation {generation})");
        let mut writer = Writer(
            Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // The delay is the test's input, not a wait for something: it decides where SIGKILL lands.
        std::thread::sleep(delay);
        writer.0.kill().unwrap();
        let status = writer.0.wait().unwrap();
        let mut stdout = String::new();
        writer.0.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        let mut stderr = String::new();
        writer.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert_eq!(status.signal(), Some(SIGKILL), "{context}: the writer stopped by itself ({status}): {stderr}");

        let acked = match last_acked(&stdout) {
            Some(acked) => {
                assert!(acked > generation, "{context}: acked {acked} without progress");
                stats.acked_saves += acked - generation;
                acked
            }
            None => {
                stats.no_ack += 1;
                generation
            }
        };

        let list =
            store.load().unwrap_or_else(|err| panic!("{context}: the store does not load: {}", ErrorChain(&err)));
        let loaded = lists::generation_of(&list).unwrap_or_else(|err| panic!("{context}: {err}"));
        assert!(
            loaded == acked || loaded == acked + 1,
            "{context}: the store holds generation {loaded}, but {acked} was acknowledged last"
        );
        assert_eq!(
            lists::fingerprint(&list),
            lists::fingerprint(&lists::list_for(loaded)),
            "{context}: generation {loaded} is not stored exactly"
        );
        if loaded > 0 {
            let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{context}");
        }
        if loaded == acked + 1 {
            stats.unacked_new += 1;
        }
        if Path::new(&temp).exists() {
            stats.stale_temp += 1;
        }
        generation = loaded;
    }

    let elapsed = started.elapsed();
    eprintln!("{RUNS} kills in {elapsed:?} (seed {seed}), reached generation {generation}: {stats:?}");
    assert!(stats.acked_saves > 0, "no save was ever acknowledged; the kills all came too early");
    assert!(stats.stale_temp > 0, "no kill landed inside a save; the test does not cover the write path");
    assert!(stats.no_ack < RUNS, "every kill came before the first save");
}
