//! Test support shared by wifiprov's crates: the golden vectors, deterministic random sources, and child
//! processes for end-to-end tests (BlueZoo on a private D-Bus, a runner for self-re-executing test binaries).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wifiprov_proto::rng::{RandomUnavailable, SecureRandom};

pub mod attack;
pub mod bluezoo;
pub mod harness;
pub mod lab;
pub mod process;
pub mod transcript;

/// Runs a future to completion on the current thread, for tests of runtime-free code (the protocol core's
/// async handlers) that must not pull in an async runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A simulated-radio scenario for end-to-end tests (`scenarios/fast.toml`): joins and scans take milliseconds.
pub const FAST_SCENARIO: &str = include_str!("../scenarios/fast.toml");

/// The golden vectors, `tests/vectors/` in the repository (their provenance is in its README).
pub fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// Loads a JSON file below `tests/vectors/`. A missing or unreadable vector fails the test: silently skipping
/// would lose the compatibility coverage the vectors exist for.
pub fn vectors(relative: &str) -> serde_json::Value {
    let path = vector_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("golden vector {} is missing or unreadable: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden vector {} is not JSON: {e}", path.display()))
}

/// Decodes a hex string field, failing the test with the field name when it is absent or not hex.
pub fn hex_field(value: &serde_json::Value, field: &str) -> Vec<u8> {
    let text = value[field].as_str().unwrap_or_else(|| panic!("vector field {field} is missing or not a string"));
    hex::decode(text).unwrap_or_else(|e| panic!("vector field {field} is not hex: {e}"))
}

/// Decodes a hex string.
pub fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("not hex: {e}: {text}"))
}

/// Hands out exactly the bytes it was given, in order, then fails. Pins every ephemeral value of a handshake and
/// checks, through [`ScriptedRandom::remaining`], that the code drew exactly what the vector expects.
#[derive(Debug, Default)]
pub struct ScriptedRandom(VecDeque<u8>);

impl ScriptedRandom {
    /// A source that yields `chunks` concatenated.
    pub fn new<I, B>(chunks: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: AsRef<[u8]>,
    {
        Self(chunks.into_iter().flat_map(|c| c.as_ref().to_vec()).collect())
    }

    /// Appends more bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
    }

    /// Bytes not drawn yet.
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
}

impl SecureRandom for ScriptedRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        if self.0.len() < dest.len() {
            return Err(RandomUnavailable);
        }
        for b in dest.iter_mut() {
            *b = self.0.pop_front().ok_or(RandomUnavailable)?;
        }
        Ok(())
    }
}

/// A deterministic, seedable stream (SHA-256 in counter mode). Not for production: for tests that need many
/// different but reproducible values.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    seed: [u8; 32],
    counter: u64,
    buffer: Vec<u8>,
}

impl SeededRandom {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed: Sha256::digest(seed.to_le_bytes()).into(), counter: 0, buffer: Vec::new() }
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        for b in dest.iter_mut() {
            if self.buffer.is_empty() {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_le_bytes());
                self.counter += 1;
                self.buffer = h.finalize().to_vec();
            }
            *b = self.buffer.pop().ok_or(RandomUnavailable)?;
        }
        Ok(())
    }
}

/// A source that always fails, for testing that callers report `RandomUnavailable` instead of panicking.
#[derive(Debug, Default, Clone, Copy)]
pub struct BrokenRandom;

impl SecureRandom for BrokenRandom {
    fn fill(&mut self, _dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        Err(RandomUnavailable)
    }
}
