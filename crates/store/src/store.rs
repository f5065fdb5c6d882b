//! The store: one file in one directory, replaced atomically on every save.

use std::fs::{File, Metadata, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wifiprov_manager::networks::NetworkList;
use zeroize::Zeroizing;

use crate::error::{IoOp, StoreError};
use crate::files::{self, DirProblem, DirState, Hook, Repair, Replace};
use crate::format;

/// How many `<name>.corrupt-<n>` names [`NetworkStore::quarantine_corrupt`] tries before giving up.
pub(crate) const MAX_QUARANTINED: u32 = 1000;

/// The list file, opened by the rules, and what it holds.
struct Opened {
    file: File,
    metadata: Metadata,
    bytes: Zeroizing<Vec<u8>>,
}

/// Whether the store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Saves {
    Allowed,
    /// [`NetworkStore::start`] found a state it must not write over.
    Refused,
}

/// The saved-network list on disk: `networks.json` in a directory of its own.
///
/// A save writes `.networks.json.tmp` next to the file (mode 0600), flushes it, renames it over the file and
/// flushes the directory, so that after a crash or a power cut the file holds either the old list or the new
/// one. A load never changes anything on disk. One process (the daemon's driver) is expected to be the only
/// writer; two concurrent savers would race on the temporary file. Every operation follows the rules of the
/// crate docs: no symbolic link is followed, no file of another user is read or replaced.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    pub(crate) dir: PathBuf,
    pub(crate) path: PathBuf,
    pub(crate) temp: PathBuf,
    pub(crate) saves: Saves,
}

impl NetworkStore {
    /// The list's file name inside the directory.
    pub const FILE_NAME: &'static str = "networks.json";
    pub(crate) const TEMP_NAME: &'static str = ".networks.json.tmp";

    /// A store in `dir`. Does no I/O: the directory is created (mode 0700) by [`start`](Self::start) or the first
    /// save.
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let path = dir.join(Self::FILE_NAME);
        let temp = dir.join(Self::TEMP_NAME);
        Self { dir, path, temp, saves: Saves::Allowed }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The list's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether saves are refused (see [`crate::StartStatus::Refused`]).
    pub fn saves_refused(&self) -> bool {
        self.saves == Saves::Refused
    }

    /// Reads the list. Changes nothing on disk.
    ///
    /// A missing file (or directory) is an empty list with [`NetworkList::DEFAULT_CAPACITY`]. A file that is
    /// not a valid list of this format version is [`StoreError::Corrupt`] and is left exactly as it is; the
    /// caller decides whether to [`quarantine_corrupt`](Self::quarantine_corrupt) it. Anything but a regular file
    /// of this process's user, or a directory of another user, is [`StoreError::Unexpected`] and is not read. A
    /// temporary file left by an interrupted save is ignored.
    pub fn load(&self) -> Result<NetworkList, StoreError> {
        let uid = files::euid();
        match files::prepare_dir(&self.dir, uid, Repair::No) {
            Ok(DirState::Ready) => {}
            Ok(DirState::Absent) => return Ok(self.empty()),
            Err(DirProblem::Untrusted(err) | DirProblem::Missing(err) | DirProblem::Loose(err)) => return Err(err),
        }
        let Some(Opened { metadata, bytes, .. }) = self.open_list(uid)? else { return Ok(self.empty()) };
        let list = self.decode(&bytes)?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %self.path.display(),
                mode = format_args!("{mode:o}"),
                "saved-network file is readable by other users; the next save sets mode 600"
            );
        }
        Ok(list)
    }

    fn empty(&self) -> NetworkList {
        tracing::debug!(path = %self.path.display(), "no saved-network file; starting with an empty list");
        NetworkList::new()
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<NetworkList, StoreError> {
        let list = format::decode(bytes).map_err(|reason| StoreError::Corrupt { path: self.path.clone(), reason })?;
        tracing::debug!(path = %self.path.display(), networks = list.len(), "loaded saved networks");
        Ok(list)
    }

    /// Replaces the stored list with `list`, atomically and durably.
    ///
    /// When this returns `Ok`, the new list survives a crash or power cut. When it returns an error, the old
    /// list is still in place, with one exception: a [`StoreError::Io`] with [`IoOp::SyncDir`] comes after the
    /// rename, so the new list is in place but may not survive a power cut. A store that
    /// [`start`](Self::start)ed on a state it must not write over refuses with [`StoreError::SavesRefused`]
    /// without touching the disk; a link, a directory or another user's file where the list or the temporary
    /// file belongs is [`StoreError::Unexpected`] and is left as it is.
    pub fn save(&self, list: &NetworkList) -> Result<(), StoreError> {
        self.save_with(list, &mut |_| None)
    }

    /// Moves a corrupt file aside to `networks.json.corrupt-<n>` (the lowest free `n` from 1 to 1000) and
    /// returns the new path; the next [`load`](Self::load) then starts with an empty list. The moved file keeps
    /// its contents for whoever investigates.
    ///
    /// Only a regular file of this user within the size limit that fails to decode is moved: the file is read
    /// and checked again first, and a valid list is refused with [`StoreError::NotCorrupt`], anything else with
    /// the error [`load`](Self::load) gives.
    pub fn quarantine_corrupt(&self) -> Result<PathBuf, StoreError> {
        let bytes = self.read(files::euid())?.ok_or_else(|| StoreError::Io {
            op: IoOp::MoveAside,
            path: self.path.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        if format::decode(&bytes).is_ok() {
            return Err(StoreError::NotCorrupt { path: self.path.clone() });
        }
        let target = self.free_quarantine_name()?;
        std::fs::rename(&self.path, &target).map_err(|source| files::io(IoOp::MoveAside, &self.path, source))?;
        if let Err(error) = files::sync_dir(&self.dir) {
            // The move happened; only its durability is in doubt.
            tracing::warn!(path = %self.dir.display(), %error, "cannot sync the directory after moving a file aside");
        }
        tracing::warn!(
            path = %self.path.display(),
            moved_to = %target.display(),
            "moved a corrupt saved-network file aside"
        );
        Ok(target)
    }

    fn free_quarantine_name(&self) -> Result<PathBuf, StoreError> {
        for n in 1..=MAX_QUARANTINED {
            let candidate = self.dir.join(format!("{}.corrupt-{n}", Self::FILE_NAME));
            if files::inspect(&candidate)?.is_none() {
                return Ok(candidate);
            }
        }
        Err(files::io(
            IoOp::MoveAside,
            &self.path,
            io::Error::other(format!("{MAX_QUARANTINED} corrupt files were moved aside already")),
        ))
    }

    /// The file, opened by the rules, and its bytes; `None` if it does not exist. A file over the size limit is
    /// corrupt.
    fn open_list(&self, uid: u32) -> Result<Option<Opened>, StoreError> {
        let Some((file, metadata)) = files::open_regular(&self.path, uid)? else { return Ok(None) };
        let bytes = files::read_limited(&self.path, &file, &metadata, format::MAX_FILE_LEN)?;
        Ok(Some(Opened { file, metadata, bytes }))
    }

    /// The file's bytes, or `None` if it does not exist. Changes nothing.
    fn read(&self, uid: u32) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self.open_list(uid)?.map(|opened| opened.bytes))
    }

    /// The list as [`start`](Self::start) loads it: when the file is used and open to other users, their
    /// permissions are removed (on the open handle) and that is logged at warn. A file that is not used is not
    /// changed.
    pub(crate) fn load_at_start(&self, uid: u32) -> Result<NetworkList, StoreError> {
        let Some(Opened { file, metadata, bytes }) = self.open_list(uid)? else { return Ok(NetworkList::new()) };
        let list = self.decode(&bytes)?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match file.set_permissions(Permissions::from_mode(files::FILE_MODE)) {
                Ok(()) => tracing::warn!(
                    path = %self.path.display(),
                    was = format_args!("{mode:o}"),
                    "saved-network file was readable by other users; set its mode to 600"
                ),
                Err(error) => tracing::warn!(
                    path = %self.path.display(),
                    mode = format_args!("{mode:o}"),
                    %error,
                    "saved-network file is readable by other users and its mode cannot be changed; the next save \
                     writes it with mode 600"
                ),
            }
        }
        Ok(list)
    }

    /// [`save`](Self::save) with a hook called after each step, which may inject a failure or a crash.
    pub(crate) fn save_with(&self, list: &NetworkList, hook: Hook<'_>) -> Result<(), StoreError> {
        if self.saves == Saves::Refused {
            return Err(StoreError::SavesRefused { dir: self.dir.clone() });
        }
        let bytes = format::encode(list).map_err(|err| files::io(IoOp::Encode, &self.path, err.into()))?;
        Replace { dir: &self.dir, path: &self.path, temp: &self.temp }.run(&bytes, hook)?;
        tracing::debug!(path = %self.path.display(), networks = list.len(), "saved networks");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
