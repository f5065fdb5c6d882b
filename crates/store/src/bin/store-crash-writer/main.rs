//! Test helper for the crash test (`tests/crash.rs`), not a user tool.
//!
//! `store-crash-writer <dir>` loads the list in `<dir>`, checks that it is exactly some generation `g` of
//! [`lists::list_for`], then saves generations `g + 1`, `g + 2`, … and prints `acked <n>` (one line, flushed)
//! after each save returns. The test kills it with SIGKILL at a random moment and checks what is on disk. It
//! stops by itself after many saves, or as soon as nobody reads its output.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use wifiprov_proto::ErrorChain;
use wifiprov_store::NetworkStore;

mod lists;

/// A bound, so that a writer the test forgot to kill does not run for ever.
const MAX_SAVES: u32 = 1_000_000;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: store-crash-writer <dir>");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("store-crash-writer: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: PathBuf) -> Result<(), String> {
    let store = NetworkStore::open(dir);
    let list = store.load().map_err(|err| ErrorChain(&err).to_string())?;
    let mut generation = lists::generation_of(&list)?;
    if lists::fingerprint(&list) != lists::fingerprint(&lists::list_for(generation)) {
        return Err(format!("the stored list is not exactly generation {generation}"));
    }
    let mut out = std::io::stdout().lock();
    for _ in 0..MAX_SAVES {
        generation += 1;
        store.save(&lists::list_for(generation)).map_err(|err| ErrorChain(&err).to_string())?;
        if writeln!(out, "acked {generation}").and_then(|()| out.flush()).is_err() {
            // The test is gone; stop rather than write on unobserved.
            return Ok(());
        }
    }
    Ok(())
}
