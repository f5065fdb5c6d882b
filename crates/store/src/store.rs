//! The store: one file in one directory, replaced atomically on every save.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wifiprov_manager::networks::NetworkList;
use zeroize::Zeroizing;

use crate::error::{CorruptReason, IoOp, StoreError};
use crate::format;

/// Mode of the list file and of the temporary file: it holds passphrases.
const FILE_MODE: u32 = 0o600;
/// Mode of the directory when the store creates it.
const DIR_MODE: u32 = 0o700;
/// How many `<name>.corrupt-<n>` names [`NetworkStore::quarantine_corrupt`] tries before giving up.
const MAX_QUARANTINED: u32 = 1000;

/// The saved-network list on disk: `networks.json` in a directory of its own.
///
/// A save writes `.networks.json.tmp` next to the file (mode 0600), flushes it, renames it over the file and
/// flushes the directory, so that after a crash or a power cut the file holds either the old list or the new
/// one. A load never changes anything on disk. One process (the daemon's driver) is expected to be the only
/// writer; two concurrent savers would race on the temporary file.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
    path: PathBuf,
    temp: PathBuf,
}

/// Points in a save after which the fault-injection tests stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    CreatedDir,
    RemovedStaleTemp,
    CreatedTemp,
    WroteHalf,
    WroteAll,
    SyncedTemp,
    Renamed,
    SyncedDir,
}

#[cfg(test)]
impl Step {
    pub(crate) const ALL: [Self; 8] = [
        Self::CreatedDir,
        Self::RemovedStaleTemp,
        Self::CreatedTemp,
        Self::WroteHalf,
        Self::WroteAll,
        Self::SyncedTemp,
        Self::Renamed,
        Self::SyncedDir,
    ];
}

/// What the fault-injection hook makes of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), expect(dead_code, reason = "only the fault-injection tests construct faults"))]
pub(crate) enum Fault {
    /// The next operation fails with an I/O error; the save cleans up as it would after a real one.
    Fail,
    /// The process dies here: the save returns at once and leaves everything as it is.
    Crash,
}

/// How a save stopped early.
enum Abort {
    Failed(StoreError),
    Crashed(StoreError),
}

impl NetworkStore {
    /// The list's file name inside the directory.
    pub const FILE_NAME: &'static str = "networks.json";
    const TEMP_NAME: &'static str = ".networks.json.tmp";

    /// A store in `dir`. Does no I/O: the directory is created (mode 0700) by the first save.
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let path = dir.join(Self::FILE_NAME);
        let temp = dir.join(Self::TEMP_NAME);
        Self { dir, path, temp }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The list's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the list.
    ///
    /// A missing file (or directory) is an empty list with [`NetworkList::DEFAULT_CAPACITY`]. A file that is
    /// not a valid list of this format version is [`StoreError::Corrupt`] and is left exactly as it is; the
    /// caller decides whether to [`quarantine_corrupt`](Self::quarantine_corrupt) it. A temporary file left by
    /// an interrupted save is ignored.
    pub fn load(&self) -> Result<NetworkList, StoreError> {
        let Some(bytes) = self.read()? else {
            tracing::debug!(path = %self.path.display(), "no saved-network file; starting with an empty list");
            return Ok(NetworkList::new());
        };
        let list = format::decode(&bytes).map_err(|reason| self.corrupt(reason))?;
        tracing::debug!(path = %self.path.display(), networks = list.len(), "loaded saved networks");
        Ok(list)
    }

    /// Replaces the stored list with `list`, atomically and durably.
    ///
    /// When this returns `Ok`, the new list survives a crash or power cut. When it returns an error, the old
    /// list is still in place, with one exception: a [`StoreError::Io`] with [`IoOp::SyncDir`] comes after the
    /// rename, so the new list is in place but may not survive a power cut.
    pub fn save(&self, list: &NetworkList) -> Result<(), StoreError> {
        self.save_with(list, &mut |_| None)
    }

    /// Moves a corrupt file aside to `networks.json.corrupt-<n>` (the lowest free `n` from 1) and returns the
    /// new path; the next [`load`](Self::load) then starts with an empty list. The moved file keeps its
    /// contents for whoever investigates.
    ///
    /// Checks again that the file is corrupt first, and refuses with [`StoreError::NotCorrupt`] if it loads,
    /// so that a valid list is never moved aside by mistake.
    pub fn quarantine_corrupt(&self) -> Result<PathBuf, StoreError> {
        let bytes = self.read()?.ok_or_else(|| StoreError::Io {
            op: IoOp::MoveAside,
            path: self.path.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        if format::decode(&bytes).is_ok() {
            return Err(StoreError::NotCorrupt { path: self.path.clone() });
        }
        let target = self.free_quarantine_name()?;
        fs::rename(&self.path, &target).map_err(|source| self.io(IoOp::MoveAside, &self.path, source))?;
        self.sync_dir().map_err(|source| self.io(IoOp::SyncDir, &self.dir, source))?;
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
            match fs::symlink_metadata(&candidate) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(candidate),
                Err(source) => return Err(self.io(IoOp::MoveAside, &candidate, source)),
                Ok(_) => {}
            }
        }
        Err(self.io(IoOp::MoveAside, &self.path, io::Error::other("too many corrupt files already moved aside")))
    }

    /// The file's bytes, or `None` if it does not exist. A file over the size limit is corrupt.
    fn read(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(IoOp::Read, &self.path, source)),
        };
        let metadata = file.metadata().map_err(|source| self.io(IoOp::Read, &self.path, source))?;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %self.path.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "saved-network file is readable by other users; the next save sets mode 600"
            );
        }
        if metadata.len() > format::MAX_FILE_LEN {
            return Err(self.corrupt(CorruptReason::TooLarge { max: format::MAX_FILE_LEN }));
        }
        // Sized up front so the buffer holding the passphrases is not reallocated (leaving a copy behind).
        let expected = usize::try_from(metadata.len()).unwrap_or(0);
        let mut bytes = Zeroizing::new(Vec::with_capacity(expected.saturating_add(1)));
        file.take(format::MAX_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| self.io(IoOp::Read, &self.path, source))?;
        if bytes.len() as u64 > format::MAX_FILE_LEN {
            return Err(self.corrupt(CorruptReason::TooLarge { max: format::MAX_FILE_LEN }));
        }
        Ok(Some(bytes))
    }

    /// [`save`](Self::save) with a hook called after each step, which may inject a failure or a crash.
    pub(crate) fn save_with(
        &self,
        list: &NetworkList,
        hook: &mut dyn FnMut(Step) -> Option<Fault>,
    ) -> Result<(), StoreError> {
        match self.try_save(list, hook) {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), networks = list.len(), "saved networks");
                Ok(())
            }
            Err(Abort::Crashed(err)) => Err(err),
            Err(Abort::Failed(err)) => {
                // Before the rename this removes our partial file; after it there is nothing left to remove.
                match fs::remove_file(&self.temp) {
                    Ok(()) => {}
                    Err(cleanup) if cleanup.kind() == io::ErrorKind::NotFound => {}
                    Err(cleanup) => tracing::warn!(
                        path = %self.temp.display(),
                        error = %cleanup,
                        "cannot remove temporary file after a failed save"
                    ),
                }
                Err(err)
            }
        }
    }

    fn try_save(&self, list: &NetworkList, hook: &mut dyn FnMut(Step) -> Option<Fault>) -> Result<(), Abort> {
        let fail = |op, path| self.fail(op, path);
        let mut checkpoint = |step: Step| -> Result<(), Abort> {
            match hook(step) {
                None => Ok(()),
                Some(fault) => {
                    let err = self.io(IoOp::WriteTemp, &self.temp, io::Error::other(format!("injected at {step:?}")));
                    Err(match fault {
                        Fault::Fail => Abort::Failed(err),
                        Fault::Crash => Abort::Crashed(err),
                    })
                }
            }
        };

        let bytes = format::encode(list).map_err(|err| fail(IoOp::Encode, &self.path)(err.into()))?;

        DirBuilder::new().recursive(true).mode(DIR_MODE).create(&self.dir).map_err(fail(IoOp::CreateDir, &self.dir))?;
        checkpoint(Step::CreatedDir)?;

        // A crash can leave a temporary file behind, possibly with another mode; start from nothing, and with
        // `create_new` never follow a link someone put in its place.
        match fs::remove_file(&self.temp) {
            Ok(()) => tracing::debug!(path = %self.temp.display(), "removed a stale temporary file"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(fail(IoOp::RemoveStaleTemp, &self.temp)(source)),
        }
        checkpoint(Step::RemovedStaleTemp)?;

        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&self.temp)
            .map_err(fail(IoOp::CreateTemp, &self.temp))?;
        // The umask may have removed bits from the mode above but cannot add any; make it exact.
        file.set_permissions(Permissions::from_mode(FILE_MODE)).map_err(fail(IoOp::CreateTemp, &self.temp))?;
        checkpoint(Step::CreatedTemp)?;

        let (head, tail) = bytes.split_at_checked(bytes.len() / 2).unwrap_or((&bytes, &[]));
        file.write_all(head).map_err(fail(IoOp::WriteTemp, &self.temp))?;
        checkpoint(Step::WroteHalf)?;
        file.write_all(tail).map_err(fail(IoOp::WriteTemp, &self.temp))?;
        checkpoint(Step::WroteAll)?;
        file.sync_all().map_err(fail(IoOp::SyncTemp, &self.temp))?;
        drop(file);
        checkpoint(Step::SyncedTemp)?;

        fs::rename(&self.temp, &self.path).map_err(fail(IoOp::Replace, &self.path))?;
        checkpoint(Step::Renamed)?;
        self.sync_dir().map_err(fail(IoOp::SyncDir, &self.dir))?;
        checkpoint(Step::SyncedDir)?;
        Ok(())
    }

    /// Turns an I/O error of `op` on `path` into a failed save.
    fn fail<'a>(&'a self, op: IoOp, path: &'a Path) -> impl FnOnce(io::Error) -> Abort + 'a {
        move |source| Abort::Failed(self.io(op, path, source))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn io(&self, op: IoOp, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io { op, path: path.to_owned(), source }
    }

    fn corrupt(&self, reason: CorruptReason) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), reason }
    }
}

#[cfg(test)]
mod tests;
