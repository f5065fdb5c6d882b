//! A small runner for test binaries with a `main` of their own (`harness = false`), needed where a test runs
//! parts of itself in child processes: the binary re-executes itself with [`ROLE_VAR`] set, and `main` runs
//! that role instead of the tests.
//!
//! It prints what libtest prints (`test NAME ... ok`, then `test result: …`), so `cargo test` output reads the
//! same, and understands the arguments cargo passes on: a name filter, `--exact`, `--list`, `--ignored` (these
//! tests are never ignored, so it runs none). Tests run one after the other, each to completion: they start
//! processes, so a failure must not leave the next test racing with leftovers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::Instant;

/// The environment variable naming the role a re-executed test binary plays.
pub const ROLE_VAR: &str = "WIFIPROV_TEST_ROLE";

/// The role this process was started for, if it is a child of a test.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// Runs the tests the command line selects and reports like libtest.
pub fn run(tests: &[(&str, fn())]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&str> = args.iter().filter(|a| !a.starts_with('-')).map(String::as_str).collect();
    let selected =
        |name: &str| filters.is_empty() || filters.iter().any(|f| if exact { name == *f } else { name.contains(f) });
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests.iter().filter(|(name, _)| selected(name)) {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&(&str, fn())> = if args.iter().any(|a| a == "--ignored") {
        Vec::new()
    } else {
        tests.iter().filter(|(name, _)| selected(name)).collect()
    };
    let filtered = tests.len() - chosen.len();
    let start = Instant::now();
    println!("\nrunning {} test{}", chosen.len(), if chosen.len() == 1 { "" } else { "s" });
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let began = Instant::now();
        // The panic message goes to stderr through the default hook, as it happens.
        let outcome = catch_unwind(AssertUnwindSafe(test));
        let took = began.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({took:.1}s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({took:.1}s)");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    let passed = chosen.len() - failed.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered} filtered out; finished in \
         {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
