//! [`NetworkStore::start`]: whatever the daemon finds in its state directory, it comes up, with one problem to
//! report and nothing of the user's lost.

use std::path::PathBuf;

use wifiprov_manager::networks::NetworkList;

use crate::error::{CorruptReason, StoreError};
use crate::files::{self, DirProblem, Repair};
use crate::store::{NetworkStore, Saves};

/// What [`NetworkStore::start`] found: the store to save through, the list to run with and the one problem to
/// report.
#[derive(Debug)]
#[non_exhaustive]
pub struct Startup {
    /// The store to save through. After [`StartStatus::Refused`] it refuses every save.
    pub store: NetworkStore,
    /// The saved networks to run with: those loaded, or none.
    pub networks: NetworkList,
    /// What was wrong, if anything. The store has logged nothing about it above warn level: the caller logs it
    /// once, as an error.
    pub status: StartStatus,
}

/// How the state directory was found, by the rules of the crate docs.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartStatus {
    /// Everything is as the store leaves it (a loose directory or file mode was fixed and logged at warn).
    Ready,
    /// The list file did not decode and was moved aside; the list is empty and saves work.
    Quarantined {
        /// What was wrong with it.
        error: StoreError,
        /// Where it is now.
        moved_to: PathBuf,
    },
    /// The directory cannot be written now (a read-only mount, an immutable or missing directory that could not be
    /// created). Whatever could be read was; every save is still tried, and fails until the directory is fixed.
    NotWritable(StoreError),
    /// Something the store must not write over, or must not trust, is there, and was left exactly as it is. The
    /// list is the one loaded when it could be read safely (only a state directory or a temporary file that is
    /// wrong still lets it load), empty otherwise; every save is refused until the state is fixed and the store
    /// started again.
    Refused(StoreError),
}

impl StartStatus {
    /// The problem, unless there is none.
    pub fn error(&self) -> Option<&StoreError> {
        match self {
            Self::Ready => None,
            Self::Quarantined { error, .. } | Self::NotWritable(error) | Self::Refused(error) => Some(error),
        }
    }
}

/// Whether a corrupt list is moved aside: only one that is there in full and simply does not decode. A newer
/// format version stays for the newer build that wrote it; an oversized file is not read at all.
fn quarantinable(reason: &CorruptReason) -> bool {
    !matches!(reason, CorruptReason::TooLarge { .. } | CorruptReason::UnsupportedVersion { .. })
}

impl NetworkStore {
    /// Prepares the directory and loads the list the way the daemon starts: never fails, never deletes, never
    /// writes over anything it did not write. The rules are in the crate docs; in short, the directory is
    /// created (0700) or its group and other permissions removed, a corrupt list is moved aside, and anything
    /// else wrong is left in place with saves refused.
    pub fn start(mut self) -> Startup {
        let (networks, status) = self.examine(files::euid());
        if matches!(status, StartStatus::Refused(_)) {
            self.saves = Saves::Refused;
        }
        Startup { store: self, networks, status }
    }

    fn examine(&self, uid: u32) -> (NetworkList, StartStatus) {
        // A problem that still lets the list be read, but forbids writing.
        let mut refuse = None;
        match files::prepare_dir(&self.dir, uid, Repair::Yes) {
            Ok(_) => {}
            Err(DirProblem::Untrusted(error)) => return (NetworkList::new(), StartStatus::Refused(error)),
            Err(DirProblem::Missing(error)) => return (NetworkList::new(), StartStatus::NotWritable(error)),
            Err(DirProblem::Loose(error)) => refuse = Some(error),
        }
        if refuse.is_none() {
            refuse = self.check_temp(uid).err();
        }

        let networks = match (self.load_at_start(uid), refuse) {
            (Ok(list), None) => list,
            (Ok(list), Some(error)) => return (list, StartStatus::Refused(error)),
            (Err(StoreError::Corrupt { path, reason }), None) if quarantinable(&reason) => {
                return match self.quarantine_corrupt() {
                    Ok(moved_to) => (
                        NetworkList::new(),
                        StartStatus::Quarantined { error: StoreError::Corrupt { path, reason }, moved_to },
                    ),
                    Err(failure) => (
                        NetworkList::new(),
                        StartStatus::Refused(StoreError::NotMovedAside { path, reason, source: Box::new(failure) }),
                    ),
                };
            }
            // Something else there, or a problem found before: it stays as it is.
            (Err(error), refuse) => return (NetworkList::new(), StartStatus::Refused(refuse.unwrap_or(error))),
        };
        match files::check_writable(&self.dir) {
            Ok(()) => (networks, StartStatus::Ready),
            Err(error) => (networks, StartStatus::NotWritable(error)),
        }
    }

    /// A temporary file may be left by a crash: a regular file of ours, removed by the next save. Anything else
    /// under its name was not put there by the store.
    fn check_temp(&self, uid: u32) -> Result<(), StoreError> {
        match files::inspect(&self.temp)? {
            Some(metadata) => files::check_regular(&self.temp, &metadata, uid),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
