//! [`Counter`]: one `u32` persisted with the same rules as the network list (for example the number of failed
//! proof-of-possession attempts, which must survive a restart).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{CorruptReason, StoreError};
use crate::files::{self, DirProblem, DirState, Repair, Replace};

/// The format version this build reads and writes.
const VERSION: u64 = 1;
/// The first word of every counter file.
const MAGIC: &str = "wifiprov-counter";
/// The largest counter file `load` reads; a valid one takes about 100 bytes.
const MAX_FILE_LEN: u64 = 256;
/// The longest name.
const MAX_NAME_LEN: usize = 64;

/// A `u32` in a file of its own, `<dir>/<name>`, kept with the network list's rules (see the crate docs):
/// replaced atomically (temporary file `.<name>.tmp`, `fsync`, `rename`, `fsync` of the directory), mode 0600,
/// never read or written through a symbolic link, never another user's file, at most 256 bytes read.
///
/// The file is one line, `wifiprov-counter 1 <value> <sha256>`, where `<sha256>` is the hex SHA-256 of
/// `wifiprov-counter 1 <name> <value>`: a flipped bit, a hand edit or a file copied from another counter does
/// not read as a valid value.
///
/// # A bad file
///
/// [`load`](Self::load) answers `Ok(0)` only when the file (or the directory) does not exist. A file that is
/// there but cannot be trusted (corrupt, too large, a newer version, a link, a directory, another user's, a
/// directory that is not this user's, a read error) is an error, and is left exactly as it is. The caller maps
/// every error to its most conservative value: for a count of failed proof-of-possession attempts, that is
/// "locked", never 0, so that damaging or replacing the file cannot reset the count. [`save`](Self::save)
/// replaces a regular file of this user whatever it holds, so that the caller can write a fresh value once it
/// has decided what a bad one means; anything else where the file belongs is refused and left in place.
#[derive(Debug, Clone)]
pub struct Counter {
    name: String,
    dir: PathBuf,
    path: PathBuf,
    temp: PathBuf,
}

impl Counter {
    /// The counter `name` in `dir`. Does no I/O. `name` is 1 to 64 of `a-z`, `0-9`, `-` and `_`; anything else
    /// is [`StoreError::InvalidName`].
    pub fn open(dir: impl Into<PathBuf>, name: &str) -> Result<Self, StoreError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(StoreError::InvalidName { name: name.to_owned() });
        }
        let dir = dir.into();
        let path = dir.join(name);
        let temp = dir.join(format!(".{name}.tmp"));
        Ok(Self { name: name.to_owned(), dir, path, temp })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored value: 0 when there is no file; an error (see the type's docs) for anything that is there and
    /// cannot be trusted. Changes nothing on disk.
    pub fn load(&self) -> Result<u32, StoreError> {
        let uid = files::euid();
        match files::prepare_dir(&self.dir, uid, Repair::No) {
            Ok(DirState::Ready) => {}
            Ok(DirState::Absent) => return Ok(0),
            Err(DirProblem::Untrusted(err) | DirProblem::Missing(err) | DirProblem::Loose(err)) => return Err(err),
        }
        let Some((file, metadata)) = files::open_regular(&self.path, uid)? else { return Ok(0) };
        let bytes = files::read_limited(&self.path, &file, &metadata, MAX_FILE_LEN)?;
        decode(&self.name, &bytes).map_err(|reason| StoreError::Corrupt { path: self.path.clone(), reason })
    }

    /// Stores `value`, atomically and durably: when this returns `Ok` the value survives a crash or a power cut;
    /// after an error the old file is still in place (the directory is created, mode 0700, when missing).
    pub fn save(&self, value: u32) -> Result<(), StoreError> {
        let bytes = encode(&self.name, value);
        Replace { dir: &self.dir, path: &self.path, temp: &self.temp }.run(bytes.as_bytes(), &mut |_| None)
    }
}

fn checksum(name: &str, value: u32) -> String {
    hex::encode(Sha256::digest(format!("{MAGIC} {VERSION} {name} {value}").as_bytes()))
}

fn encode(name: &str, value: u32) -> String {
    format!("{MAGIC} {VERSION} {value} {}\n", checksum(name, value))
}

fn invalid(problem: &str) -> CorruptReason {
    CorruptReason::Invalid { field: "counter".to_owned(), problem: problem.to_owned() }
}

fn decode(name: &str, bytes: &[u8]) -> Result<u32, CorruptReason> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("is not text"))?;
    let line = text.strip_suffix('\n').ok_or_else(|| invalid("is cut short"))?;
    let mut words = line.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(invalid("is not a counter file"));
    }
    let version = words.next().and_then(number::<u64>).ok_or_else(|| invalid("has no version"))?;
    if version != VERSION {
        return Err(CorruptReason::UnsupportedVersion { version, supported: VERSION });
    }
    let value = words.next().and_then(number::<u32>).ok_or_else(|| invalid("has no valid value"))?;
    let sum = words.next().ok_or_else(|| invalid("has no checksum"))?;
    if words.next().is_some() {
        return Err(invalid("has trailing words"));
    }
    if sum != checksum(name, value) {
        return Err(CorruptReason::ChecksumMismatch);
    }
    Ok(value)
}

/// A decimal number written as `encode` writes it: digits only, no sign, no leading zero.
fn number<T: std::str::FromStr>(word: &str) -> Option<T> {
    let canonical =
        !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) && (word == "0" || !word.starts_with('0'));
    if canonical { word.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_pinned_and_round_trips() {
        let text = encode("failed-proofs", 3);
        let sum = hex::encode(Sha256::digest(b"wifiprov-counter 1 failed-proofs 3"));
        assert_eq!(text, format!("wifiprov-counter 1 3 {sum}\n"));
        for value in [0, 1, 41, u32::MAX] {
            assert_eq!(decode("x", encode("x", value).as_bytes()).ok(), Some(value));
        }
    }

    #[test]
    fn anything_else_is_corrupt() {
        let good = encode("failed-proofs", 7);
        let sum = checksum("failed-proofs", 7);
        let cases = [
            String::new(),
            good.trim_end().to_owned(),
            good.replace(" 7 ", " 8 "),
            good.replace(" 7 ", " 07 "),
            good.replace(" 7 ", " +7 "),
            good.replace("wifiprov-counter", "counter"),
            format!("wifiprov-counter 1 4294967296 {sum}\n"),
            format!("wifiprov-counter 1 7 {sum} extra\n"),
            format!("wifiprov-counter 1 7  {sum}\n"),
            good.to_uppercase(),
            "\u{fffd}".to_owned(),
        ];
        for case in cases {
            assert!(decode("failed-proofs", case.as_bytes()).is_err(), "{case:?}");
        }
        assert!(matches!(decode("other", good.as_bytes()), Err(CorruptReason::ChecksumMismatch)));
        assert!(matches!(
            decode("failed-proofs", good.replacen(" 1 ", " 2 ", 1).as_bytes()),
            Err(CorruptReason::UnsupportedVersion { version: 2, .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", "a.b", "../x", "A", "a b", &"x".repeat(65), "networks.json"] {
            assert!(matches!(Counter::open("/tmp", bad), Err(StoreError::InvalidName { .. })), "{bad:?}");
        }
        assert!(Counter::open("/tmp", "failed-proofs_2").is_ok());
    }
}
