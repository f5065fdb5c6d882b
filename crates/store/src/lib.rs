//! Crash-safe persistence of the saved-network list ([`NetworkList`](wifiprov_manager::networks::NetworkList)).
//!
//! [`NetworkStore`] keeps the list in one file, `networks.json`, in a directory of its own. Every save
//! replaces the whole file atomically (temporary file, `fsync`, `rename`, `fsync` of the directory), so after
//! a crash or power cut the file holds either the list before the save or the list after it. A load validates
//! everything and refuses a damaged file with [`StoreError::Corrupt`] without touching it; moving it aside is a
//! separate, explicit call, [`NetworkStore::quarantine_corrupt`]. [`NetworkStore::start`] is what the daemon
//! calls at start: it applies the rules below and always yields a list to run with. [`Counter`] keeps one number
//! by the same rules.
//!
//! # What the store trusts, and what it does with the rest
//!
//! A device whose state directory is damaged, tampered with or read-only must still come up and be
//! provisionable, must never tell a client that something was saved when it was not, and must never destroy
//! what it finds. So:
//!
//! - **Whose files.** Only files and a directory owned by the process's effective uid are read or written.
//!   Nothing is ever opened through a symbolic link (`O_NOFOLLOW`; `lstat` decides before an open, `fstat`
//!   checks after it), and nothing but a regular file is opened at all (`O_NONBLOCK`, so that a FIFO put in
//!   place cannot block the daemon).
//! - **The directory.** Missing: created, with missing parents, mode 0700. Open to group or others: those bits
//!   are removed (through the open directory handle), logged once at warn. Owned by another user, or not a
//!   directory: refused, nothing in it read or written. A symbolic link in its place is followed only when the
//!   link is owned by root or by the process's user (set up to put the state on another partition); its target
//!   then has to pass the same checks. A link of another user is refused. Links among the parent directories
//!   are not checked: whoever can change those can choose the state directory anyway.
//! - **`networks.json`.** Missing: an empty list. A regular file of ours, at most 1 MiB, that decodes: the
//!   list (a mode open to others is set to 0600 at start, logged at warn). One that is within the limit but does
//!   not decode (cut short, a checksum mismatch, an invalid field): moved aside to `networks.json.corrupt-<n>`
//!   (the lowest free `n`, at most 1000) and the daemon starts with no saved network. Everything else stays
//!   exactly where and as it is: a file over 1 MiB, a newer format version (kept for the build that wrote it),
//!   a file that cannot be read, another user's file, a directory, a link, a special file, and a corrupt file
//!   that cannot be moved aside (all 1000 names taken, a read-only directory).
//! - **`.networks.json.tmp`.** A regular file of ours is what a crash leaves behind, and the next save removes
//!   it. Anything else under that name (a link, a directory, another user's file) was not put there by the
//!   store and stays.
//! - **Starting anyway** ([`StartStatus`]). Whatever is found, [`NetworkStore::start`] returns a list and at
//!   most one problem, for the daemon to log once as an error and serve provisioning regardless. When something
//!   was left in place, the store *refuses every save* ([`StoreError::SavesRefused`]) until the state is fixed
//!   and the daemon restarted: a save would write over what is there, or write secrets into a directory others
//!   can reach. The list starts empty, except when only the directory's mode or the temporary file is wrong:
//!   then `networks.json` itself is fine and is loaded. A directory that cannot be written (read-only mount,
//!   immutable) is reported too, and saves are still tried, each failing until it can be written.
//! - **Failures are failures.** A save that fails returns an error, the old file stays in place, and the
//!   daemon tells the client its change was not saved.
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

mod counter;
mod error;
mod files;
mod format;
mod startup;
mod store;

// Public interface.
pub use counter::Counter;
pub use error::{CorruptReason, Found, IoOp, StoreError};
pub use startup::{StartStatus, Startup};
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
