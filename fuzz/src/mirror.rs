//! The client's end of an established session, kept beside a device session so the harness can send the device
//! properly encrypted requests and check its encrypted answers.
//!
//! Security 0 and 1 use the real [`ClientSession`]. Security 2 uses [`Gcm`], a second implementation of the
//! data-phase rules written from the protocol notes (AES-256-GCM, 16-byte tag, nonce = 8-byte prefix ‖ 32-bit
//! big-endian counter advanced after every successful operation and refused at 0; patch 0: one fixed 16-byte
//! IV): a differential check on `security/cipher.rs` that costs no SRP arithmetic on the client side.

use aes::Aes256;
use aes_gcm::aead::consts::U16;
use aes_gcm::{AeadInOut, AesGcm, KeyInit, Nonce};
use wifiprov_proto::security::{ClientSession, Sec2Patch};

/// A body the client side could not encrypt or decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The client side of one established session.
pub enum Mirror {
    /// A real client session (security 0 or 1).
    Session(Box<ClientSession>),
    /// Security 2's data phase, reimplemented.
    Gcm(Box<Gcm>),
}

impl Mirror {
    /// Encrypts a request in place.
    pub fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), Refused> {
        match self {
            Self::Session(s) => s.encrypt(data).map_err(|_| Refused),
            Self::Gcm(g) => g.encrypt(data),
        }
    }

    /// Decrypts a response in place.
    pub fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), Refused> {
        match self {
            Self::Session(s) => s.decrypt(data).map_err(|_| Refused),
            Self::Gcm(g) => g.decrypt(data),
        }
    }
}

/// Security 2's data phase as the protocol notes describe it.
pub enum Gcm {
    /// Patch 1: nonce counter.
    Counter {
        /// The cipher.
        aead: Box<aes_gcm::Aes256Gcm>,
        /// The first 8 bytes of the device nonce.
        prefix: [u8; 8],
        /// The next counter value.
        counter: u32,
    },
    /// Patch 0: one IV for everything.
    Legacy {
        /// The cipher.
        aead: Box<AesGcm<Aes256, U16>>,
        /// The device nonce.
        iv: [u8; 16],
    },
}

impl Gcm {
    /// The cipher for `key` and the device nonce the handshake delivered.
    pub fn new(key: &[u8; 32], patch: Sec2Patch, nonce: &[u8]) -> Option<Self> {
        Some(match patch {
            Sec2Patch::Counter => {
                let nonce: [u8; 12] = nonce.try_into().ok()?;
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&nonce[..8]);
                let counter = u32::from_be_bytes([nonce[8], nonce[9], nonce[10], nonce[11]]);
                Self::Counter { aead: Box::new(aes_gcm::Aes256Gcm::new(key.into())), prefix, counter }
            }
            _ => Self::Legacy { aead: Box::new(AesGcm::new(key.into())), iv: nonce.try_into().ok()? },
        })
    }

    fn counter_nonce(prefix: &[u8; 8], counter: u32) -> Result<[u8; 12], Refused> {
        if counter == 0 {
            return Err(Refused);
        }
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(prefix);
        nonce[8..].copy_from_slice(&counter.to_be_bytes());
        Ok(nonce)
    }

    /// Seals `data` in place (the tag is appended).
    pub fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), Refused> {
        match self {
            Self::Counter { aead, prefix, counter } => {
                let nonce = Self::counter_nonce(prefix, *counter)?;
                aead.encrypt_in_place(&nonce.into(), &[], data).map_err(|_| Refused)?;
                *counter = counter.wrapping_add(1);
            }
            Self::Legacy { aead, iv } => {
                aead.encrypt_in_place(&Nonce::<U16>::from(*iv), &[], data).map_err(|_| Refused)?;
            }
        }
        Ok(())
    }

    /// Opens `data` in place; a failure leaves the counter where it was.
    pub fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), Refused> {
        if data.len() < 16 {
            return Err(Refused);
        }
        match self {
            Self::Counter { aead, prefix, counter } => {
                let nonce = Self::counter_nonce(prefix, *counter)?;
                aead.decrypt_in_place(&nonce.into(), &[], data).map_err(|_| Refused)?;
                *counter = counter.wrapping_add(1);
            }
            Self::Legacy { aead, iv } => {
                aead.decrypt_in_place(&Nonce::<U16>::from(*iv), &[], data).map_err(|_| Refused)?;
            }
        }
        Ok(())
    }
}
