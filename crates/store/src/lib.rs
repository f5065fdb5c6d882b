//! Crash-safe persistence of the saved-network list ([`NetworkList`](wifiprov_manager::networks::NetworkList)).
//!
//! [`NetworkStore`] keeps the list in one file, `networks.json`, in a directory of its own. Every save
//! replaces the whole file atomically (temporary file, `fsync`, `rename`, `fsync` of the directory), so after
//! a crash or power cut the file holds either the list before the save or the list after it. A load validates
//! everything and refuses a damaged file with [`StoreError::Corrupt`] without touching it; moving it aside is a
//! separate, explicit call, [`NetworkStore::quarantine_corrupt`], so the daemon decides.
//!
//! # File format, version 1
//!
//! Pretty-printed JSON, mode 0600:
//!
//! ```json
//! {
//!   "version": 1,
//!   "capacity": 8,
//!   "networks": [
//!     {
//!       "ssid": "686f6d65",
//!       "security": "wpa-psk",
//!       "passphrase": "correct horse battery",
//!       "visibility": "broadcast",
//!       "bssid": null,
//!       "last_result": { "outcome": "other-failure", "reason": 15, "at_unix_secs": 1700000000 }
//!     }
//!   ],
//!   "sha256": "…"
//! }
//! ```
//!
//! - `networks` is in priority order, index 0 first. Every field is required; `bssid`, `passphrase` and
//!   `last_result` may be `null`. Unknown fields are refused.
//! - `ssid` is the SSID's bytes in hex (SSIDs are not always UTF-8). `security` is `open`, `wpa-psk`,
//!   `wpa3-sae` or `wpa2-wpa3`; `visibility` is `broadcast` or `hidden`; `bssid` is `aa:bb:cc:dd:ee:ff`.
//! - `passphrase` is stored as given (NetworkManager or wpa_supplicant need it as is); the file's mode is what
//!   protects it.
//! - `last_result.outcome` is `connected`, `auth-failed`, `not-found` or `other-failure`; only the last has
//!   `reason`, the ESP disconnect reason code.
//! - `sha256` is the hex SHA-256 of the canonical form: the same document without `sha256`, serialized as
//!   compact JSON in the field order above. `version` is checked before anything else, so a future version
//!   is reported as such.
//!
//! The checksum catches what JSON parsing cannot: a change that leaves a well-formed file with valid values
//! (a flipped bit in a passphrase or priority on worn flash, a hand edit). A file cut short anywhere before its
//! final newline is already not valid JSON.
#![forbid(unsafe_code)]

mod error;
mod format;
mod store;

// Public interface.
pub use error::{CorruptReason, IoOp, StoreError};
pub use store::NetworkStore;

/// What a load makes of a file's bytes (its size limit, then the format's checks), and the bytes a save of the
/// resulting list writes. For the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub fn decode_for_fuzzing(
    bytes: &[u8],
) -> Result<(wifiprov_manager::networks::NetworkList, zeroize::Zeroizing<Vec<u8>>), CorruptReason> {
    if u64::try_from(bytes.len()).map_or(true, |len| len > format::MAX_FILE_LEN) {
        return Err(CorruptReason::TooLarge { max: format::MAX_FILE_LEN });
    }
    let list = format::decode(bytes)?;
    let encoded = format::encode(&list).map_err(CorruptReason::Syntax)?;
    Ok((list, encoded))
}
