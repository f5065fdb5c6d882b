//! Injected randomness.
//!
//! The protocol core never reads the OS random source itself: every ephemeral value (X25519 keys, the sec1
//! device random, SRP secrets, GCM nonce prefixes) comes from a [`SecureRandom`] the caller passes in. The daemon
//! passes [`OsRandom`]; tests pass fixed bytes so golden transcripts can be reproduced exactly.

/// The random source could not deliver bytes. Reported as an error, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("random source unavailable")]
pub struct RandomUnavailable;

/// A cryptographically secure random source.
pub trait SecureRandom {
    /// Fills `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable>;
}

impl<R: SecureRandom + ?Sized> SecureRandom for &mut R {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        (**self).fill(dest)
    }
}

/// The operating system's random source (`getrandom`).
#[cfg(feature = "os-rng")]
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

#[cfg(feature = "os-rng")]
impl SecureRandom for OsRandom {
    #[allow(clippy::disallowed_methods, reason = "the one adapter from the OS random source, used by binaries")]
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        getrandom::fill(dest).map_err(|_| RandomUnavailable)
    }
}

pub(crate) fn random_array<const N: usize>(
    rng: &mut dyn SecureRandom,
) -> Result<zeroize::Zeroizing<[u8; N]>, RandomUnavailable> {
    let mut out = zeroize::Zeroizing::new([0u8; N]);
    rng.fill(out.as_mut())?;
    Ok(out)
}
