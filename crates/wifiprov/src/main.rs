//! `wifiprov`: provision ESP-compatible Wi-Fi devices from the command line.
//!
//! `main` parses the flags, runs one command and turns its report or error into output and an exit code, in
//! one place: reports go to stdout (text or one JSON object), errors are printed once as `wifiprov: {err:#}` on
//! stderr, and a closed stdout exits 0.
#![forbid(unsafe_code)]

mod commands;
mod exit;
mod flags;
mod output;
mod progress;
mod secrets;
mod session;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;

fn main() -> ExitCode {
    let flags = match flags::parse() {
        Ok(flags) => flags,
        Err(err) => return ExitCode::from(output::usage(&err)),
    };
    init_logging(flags.global.verbose);
    let json = flags.global.json;
    let code = match run(flags) {
        Ok(report) => output::emit(report.as_ref(), json),
        Err(err) => output::fail(&err, json),
    };
    ExitCode::from(code.number())
}

fn run(flags: flags::Flags) -> anyhow::Result<Box<dyn output::Report>> {
    // One thread is plenty: the work is waiting on devices, and fleet mode multiplexes them on a LocalSet.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(commands::run(flags))
}

/// Logs go to stderr: warnings by default, `-v` debug, `-vv` trace for wifiprov's crates; `RUST_LOG` overrides.
fn init_logging(verbose: u8) {
    const OURS: [&str; 5] =
        ["wifiprov", "wifiprov_client", "wifiprov_transport_http", "wifiprov_transport_ble", "wifiprov_proto"];
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    // Our crates at the chosen level; dependencies (the runtime, the poller) stay at warnings.
    let default = OURS.iter().fold(String::from("warn"), |filter, krate| format!("{filter},{krate}={level}"));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}
