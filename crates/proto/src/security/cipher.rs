//! Data-phase ciphers. They live only inside established session states, so nothing can encrypt before key
//! agreement or with a key from an earlier session.

use aes::Aes256;
use aes_gcm::aead::consts::U16;
use aes_gcm::{AeadInOut, AesGcm, KeyInit, Nonce};
use ctr::cipher::{KeyIvInit, StreamCipher};

use super::error::SecurityError;

/// Security 1: a single AES-256-CTR keystream per session, shared by both directions and every endpoint and
/// consumed strictly in processing order (client verifier, device verifier, request 1, response 1, …).
pub(crate) struct CtrStream(ctr::Ctr128BE<Aes256>);

impl CtrStream {
    pub(crate) fn new(key: &[u8; 32], device_random: &[u8; 16]) -> Self {
        Self(ctr::Ctr128BE::<Aes256>::new(key.into(), device_random.into()))
    }

    /// Encryption and decryption are the same XOR; the keystream position carries over, mid-block included.
    pub(crate) fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }
}

/// Which nonce rule a security 2 session uses (`sec_patch_ver` in `proto-ver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sec2Patch {
    /// Firmware before the 2025 fix: one fixed 16-byte IV for every message in both directions. Insecure (nonce
    /// reuse); kept only to talk to old peers.
    Legacy,
    /// Current firmware: 12-byte nonce = 8-byte session id ‖ 32-bit big-endian counter, advanced after every
    /// successful encrypt and decrypt on both sides.
    #[default]
    Counter,
}

impl Sec2Patch {
    /// The `sec_patch_ver` value advertised for this rule.
    pub fn level(self) -> u8 {
        match self {
            Self::Legacy => 0,
            Self::Counter => 1,
        }
    }

    /// The rule a peer advertising `sec_patch_ver = level` uses; like esp_prov, anything but 1 means legacy.
    pub fn from_level(level: u64) -> Self {
        if level == 1 { Self::Counter } else { Self::Legacy }
    }
}

/// Security 2 data-phase cipher: AES-256-GCM with the 16-byte tag appended and no associated data.
pub(crate) enum GcmCipher {
    Counter { aead: Box<aes_gcm::Aes256Gcm>, prefix: [u8; 8], counter: u32 },
    Legacy { aead: Box<AesGcm<Aes256, U16>>, iv: [u8; 16] },
}

const TAG_LEN: usize = 16;

impl GcmCipher {
    /// `key` is the first 32 bytes of K; `nonce` is the device nonce, whose length the caller has checked
    /// against `patch`.
    pub(crate) fn new(key: &[u8; 32], patch: Sec2Patch, nonce: &[u8]) -> Result<Self, SecurityError> {
        let bad_len = || SecurityError::InvalidLength {
            field: "device_nonce",
            expected: match patch {
                Sec2Patch::Legacy => "16",
                Sec2Patch::Counter => "12",
            },
            got: nonce.len(),
        };
        Ok(match patch {
            Sec2Patch::Counter => {
                let (prefix, counter) = nonce.split_first_chunk::<8>().ok_or_else(bad_len)?;
                let counter: [u8; 4] = counter.try_into().map_err(|_| bad_len())?;
                Self::Counter {
                    aead: Box::new(aes_gcm::Aes256Gcm::new(key.into())),
                    prefix: *prefix,
                    counter: u32::from_be_bytes(counter),
                }
            }
            Sec2Patch::Legacy => Self::Legacy {
                aead: Box::new(AesGcm::<Aes256, U16>::new(key.into())),
                iv: nonce.try_into().map_err(|_| bad_len())?,
            },
        })
    }

    pub(crate) fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match self {
            Self::Counter { aead, prefix, counter } => {
                let nonce = counter_nonce(prefix, *counter)?;
                aead.encrypt_in_place(&nonce, &[], data).map_err(|_| SecurityError::DecryptFailed)?;
                *counter = counter.wrapping_add(1);
            }
            Self::Legacy { aead, iv } => {
                let nonce = Nonce::<U16>::from(*iv);
                aead.encrypt_in_place(&nonce, &[], data).map_err(|_| SecurityError::DecryptFailed)?;
            }
        }
        Ok(())
    }

    /// On a tag failure the counter does not move, so an injected bogus message cannot desynchronise the
    /// session's nonces.
    pub(crate) fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        if data.len() < TAG_LEN {
            return Err(SecurityError::InvalidLength {
                field: "encrypted payload",
                expected: "at least 16 (the tag)",
                got: data.len(),
            });
        }
        match self {
            Self::Counter { aead, prefix, counter } => {
                let nonce = counter_nonce(prefix, *counter)?;
                aead.decrypt_in_place(&nonce, &[], data).map_err(|_| SecurityError::DecryptFailed)?;
                *counter = counter.wrapping_add(1);
            }
            Self::Legacy { aead, iv } => {
                let nonce = Nonce::<U16>::from(*iv);
                aead.decrypt_in_place(&nonce, &[], data).map_err(|_| SecurityError::DecryptFailed)?;
            }
        }
        Ok(())
    }
}

/// A counter of 0 means it wrapped: ESP refuses to go on rather than reuse a nonce.
fn counter_nonce(prefix: &[u8; 8], counter: u32) -> Result<aes_gcm::Nonce<aes_gcm::aead::consts::U12>, SecurityError> {
    if counter == 0 {
        return Err(SecurityError::NonceExhausted);
    }
    let mut nonce = [0u8; 12];
    let (head, tail) = nonce.split_at_mut(8);
    head.copy_from_slice(prefix);
    tail.copy_from_slice(&counter.to_be_bytes());
    Ok(nonce.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_counter_never_wraps_to_a_reused_nonce() {
        // A peer-supplied nonce whose counter starts at the last value: one operation, then refusal.
        let nonce = [7, 7, 7, 7, 7, 7, 7, 7, 0xff, 0xff, 0xff, 0xff];
        let mut sender = GcmCipher::new(&[1; 32], Sec2Patch::Counter, &nonce).unwrap();
        let mut receiver = GcmCipher::new(&[1; 32], Sec2Patch::Counter, &nonce).unwrap();
        let mut message = b"last".to_vec();
        sender.encrypt(&mut message).unwrap();
        receiver.decrypt(&mut message).unwrap();
        assert_eq!(message, b"last");
        assert!(matches!(sender.encrypt(&mut b"next".to_vec()), Err(SecurityError::NonceExhausted)));
        assert!(matches!(receiver.decrypt(&mut vec![0; 20]), Err(SecurityError::NonceExhausted)));
    }

    #[test]
    fn nonce_length_must_match_the_patch_level() {
        assert!(GcmCipher::new(&[1; 32], Sec2Patch::Counter, &[0; 16]).is_err());
        assert!(GcmCipher::new(&[1; 32], Sec2Patch::Legacy, &[0; 12]).is_err());
        assert!(GcmCipher::new(&[1; 32], Sec2Patch::Legacy, &[0; 16]).is_ok());
    }

    #[test]
    fn legacy_reuses_one_iv_in_both_directions() {
        let iv = [3u8; 16];
        let mut a = GcmCipher::new(&[2; 32], Sec2Patch::Legacy, &iv).unwrap();
        let mut b = GcmCipher::new(&[2; 32], Sec2Patch::Legacy, &iv).unwrap();
        let (mut first, mut second) = (b"same".to_vec(), b"same".to_vec());
        a.encrypt(&mut first).unwrap();
        a.encrypt(&mut second).unwrap();
        assert_eq!(first, second, "patch 0 has no counter");
        b.decrypt(&mut first).unwrap();
        assert_eq!(first, b"same");
    }
}
