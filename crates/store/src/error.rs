//! What can go wrong when loading or saving. No message ever contains a passphrase or other file content
//! beyond numbers and field names.

use core::fmt;
use std::io;
use std::path::PathBuf;

use wifiprov_manager::networks::NetworkError;

/// Why the network list could not be loaded, saved or moved aside.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file system refused an operation. Nothing was changed by a failed save unless `op` is
    /// [`IoOp::SyncDir`]: then the new list is in place but may not survive a power cut.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not a valid saved-network list of a version this build reads. It was left
    /// untouched; [`crate::NetworkStore::quarantine_corrupt`] moves it aside.
    #[error("saved-network file {} is corrupt", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: CorruptReason,
    },
    /// [`crate::NetworkStore::quarantine_corrupt`] was asked to move aside a file that loads fine.
    #[error("saved-network file {} is not corrupt; refusing to move it aside", path.display())]
    NotCorrupt {
        /// The file.
        path: PathBuf,
    },
    /// A corrupt file could not be moved aside (no free `corrupt-<n>` name, a read-only directory); it was left
    /// where it is.
    #[error("saved-network file {} is corrupt ({reason}) and could not be moved aside", path.display())]
    NotMovedAside {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: CorruptReason,
        /// Why it could not be moved.
        #[source]
        source: Box<StoreError>,
    },
    /// Something the store does not write, or does not trust, is where its directory or one of its files
    /// belongs. It was left exactly as it is: the store neither reads it nor writes over it.
    #[error("{} is {found}", path.display())]
    Unexpected {
        /// The path.
        path: PathBuf,
        /// What is there.
        found: Found,
    },
    /// The store was started on a state it must not write over (see [`crate::StartStatus::Refused`]): every
    /// save is refused, without touching the disk, until the state is fixed and the store started again.
    #[error("saving in {} is disabled: what was found there at start is left as it is", dir.display())]
    SavesRefused {
        /// The store's directory.
        dir: PathBuf,
    },
    /// A [`crate::Counter`] name that is not 1 to 64 of `a-z`, `0-9`, `-` and `_` (a bug in the caller).
    #[error("{name:?} is not a valid counter name")]
    InvalidName {
        /// The name given.
        name: String,
    },
}

/// What a [`StoreError::Unexpected`] found. `Display` gives the phrase used in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// A symbolic link where one of the store's files belongs.
    Symlink,
    /// A symbolic link in place of the directory, owned by a user other than root or this process's.
    UntrustedSymlink {
        /// The link's owner.
        uid: u32,
    },
    /// A directory where one of the store's files belongs.
    Directory,
    /// A device, FIFO or socket where one of the store's files belongs.
    SpecialFile,
    /// Something other than a directory (or a link to nothing) where the store's directory belongs.
    NotADirectory,
    /// A file or directory of another user.
    ForeignOwner {
        /// Its owner.
        uid: u32,
        /// This process's effective uid.
        expected: u32,
    },
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Symlink => f.write_str("a symbolic link, not a regular file"),
            Self::UntrustedSymlink { uid } => write!(
                f,
                "a symbolic link owned by uid {uid} (only links owned by root or by this process's user are followed)"
            ),
            Self::Directory => f.write_str("a directory, not a regular file"),
            Self::SpecialFile => f.write_str("a device, FIFO or socket, not a regular file"),
            Self::NotADirectory => f.write_str("not a directory"),
            Self::ForeignOwner { uid, expected } => {
                write!(f, "owned by uid {uid}, not by this process's uid {expected}")
            }
        }
    }
}

/// The file operation a [`StoreError::Io`] happened in. `Display` gives the verb phrase used in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// Turning the list into bytes (cannot fail in practice).
    Encode,
    /// Creating the store's directory.
    CreateDir,
    /// Removing a temporary file left by an interrupted save.
    RemoveStaleTemp,
    /// Creating the temporary file and setting its mode.
    CreateTemp,
    /// Writing the temporary file.
    WriteTemp,
    /// Flushing the temporary file to the disk.
    SyncTemp,
    /// Renaming the temporary file over the list.
    Replace,
    /// Flushing the directory, which makes the rename durable.
    SyncDir,
    /// Reading the list.
    Read,
    /// Moving a corrupt list aside.
    MoveAside,
    /// Looking at what is at a path (`lstat`, `fstat`).
    Inspect,
    /// Opening the directory.
    OpenDir,
    /// Removing group and other permissions from the directory or a file.
    Tighten,
    /// Checking that the directory can be written to.
    CheckWritable,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encode => "encode the network list for",
            Self::CreateDir => "create directory",
            Self::RemoveStaleTemp => "remove stale temporary file",
            Self::CreateTemp => "create temporary file",
            Self::WriteTemp => "write",
            Self::SyncTemp => "sync",
            Self::Replace => "replace",
            Self::SyncDir => "sync directory",
            Self::Read => "read",
            Self::MoveAside => "move aside",
            Self::Inspect => "inspect",
            Self::OpenDir => "open directory",
            Self::Tighten => "restrict the permissions of",
            Self::CheckWritable => "write into directory",
        })
    }
}

/// What is wrong with a corrupt file. Field paths look like `networks[2].ssid`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptReason {
    /// The file is larger than any list this build writes.
    #[error("file is larger than {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// The file is not JSON, for example because it was cut short.
    #[error("not valid JSON")]
    Syntax(#[source] serde_json::Error),
    /// The file was written in a format version this build does not read.
    #[error("format version {version} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        version: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// A field is missing, unknown, of the wrong type or out of range.
    #[error("{field} {problem}")]
    Invalid {
        /// Where in the file.
        field: String,
        /// What is wrong, for example "is missing" or "is not hex".
        problem: String,
    },
    /// The fields are well-formed one by one, but do not make a valid list or network (a passphrase on an open
    /// network, two networks with one SSID, more networks than the capacity).
    #[error("{field} is inconsistent")]
    Inconsistent {
        /// Where in the file.
        field: String,
        /// The rule that was broken.
        #[source]
        source: NetworkError,
    },
    /// The `sha256` field does not match the contents: the file was altered or damaged after it was written.
    #[error("checksum does not match the contents")]
    ChecksumMismatch,
}
