//! A deterministic [`SecureRandom`] for fuzzing: bytes queued by the harness first (the golden vectors' device
//! secrets, so a replayed transcript gets the answers it recorded), then a SplitMix64 stream seeded from the
//! input. It can be told to fail after a number of bytes, to reach the `RandomUnavailable` paths.

use std::collections::VecDeque;

use wifiprov_proto::rng::{RandomUnavailable, SecureRandom};

/// The fuzz targets' random source. Not random at all: every run of an input draws the same bytes.
#[derive(Debug, Clone)]
pub struct FuzzRng {
    script: VecDeque<u8>,
    state: u64,
    /// Bytes it still delivers before failing; `None` never fails.
    budget: Option<usize>,
}

impl FuzzRng {
    /// A stream determined by `seed`, failing once `budget` bytes have been drawn (if given).
    pub fn new(seed: u64, budget: Option<usize>) -> Self {
        Self { script: VecDeque::new(), state: seed, budget }
    }

    /// Queues `bytes` to be drawn before anything else that is queued later.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.script.extend(bytes);
    }

    /// Replaces what is queued with `bytes`: the next draws are exactly these.
    pub fn script(&mut self, bytes: &[u8]) {
        self.script.clear();
        self.script.extend(bytes);
    }

    /// Queued bytes not drawn yet.
    pub fn queued(&self) -> usize {
        self.script.len()
    }

    /// Whether it has failed, or will on the next draw.
    pub fn exhausted(&self) -> bool {
        self.budget == Some(0)
    }

    /// Whether it may fail at all.
    pub fn may_fail(&self) -> bool {
        self.budget.is_some()
    }

    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl SecureRandom for FuzzRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        if let Some(budget) = &mut self.budget {
            *budget = budget.checked_sub(dest.len()).ok_or(RandomUnavailable)?;
        }
        for chunk in dest.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            for (slot, byte) in chunk.iter_mut().zip(word) {
                *slot = self.script.pop_front().unwrap_or(byte);
            }
        }
        Ok(())
    }
}
