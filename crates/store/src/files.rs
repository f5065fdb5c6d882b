//! The rules every file operation of the store follows (see the crate docs): a file is opened only when it is a
//! regular file of this process's user, never through a symbolic link (`O_NOFOLLOW`) and never blocking on a FIFO
//! put in its place; the directory is this user's, with no permission for group or others; a file is replaced
//! only by a rename of a new file written next to it.

use std::fs::{DirBuilder, File, Metadata, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::error::{CorruptReason, Found, IoOp, StoreError};

/// Mode of every file the store writes: they may hold secrets.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of the directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The permission bits of group and others.
const OTHERS: u32 = 0o077;

/// The effective uid of this process: the only owner, besides root for a link to the directory, the store
/// trusts.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub(crate) fn io(op: IoOp, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io { op, path: path.to_owned(), source }
}

fn unexpected(path: &Path, found: Found) -> StoreError {
    StoreError::Unexpected { path: path.to_owned(), found }
}

/// What `lstat` finds at `path`, or `None` when nothing is there.
pub(crate) fn inspect(path: &Path) -> Result<Option<Metadata>, StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io(IoOp::Inspect, path, source)),
    }
}

/// Checks that `metadata` (from `lstat` or `fstat`) is a regular file of `uid`.
pub(crate) fn check_regular(path: &Path, metadata: &Metadata, uid: u32) -> Result<(), StoreError> {
    let kind = metadata.file_type();
    let found = if kind.is_symlink() {
        Found::Symlink
    } else if kind.is_dir() {
        Found::Directory
    } else if !kind.is_file() {
        Found::SpecialFile
    } else if metadata.uid() != uid {
        Found::ForeignOwner { uid: metadata.uid(), expected: uid }
    } else {
        return Ok(());
    };
    Err(unexpected(path, found))
}

/// Opens the regular file of `uid` at `path` for reading, or `None` when there is none. Anything else there (a
/// link, a directory, a FIFO, a device, a file of another user) is [`StoreError::Unexpected`] and is not opened:
/// `lstat` decides before the open, `O_NOFOLLOW | O_NONBLOCK` keep a swap in between from following a link or
/// blocking, and `fstat` checks again what was opened.
pub(crate) fn open_regular(path: &Path, uid: u32) -> Result<Option<(File, Metadata)>, StoreError> {
    let Some(metadata) = inspect(path)? else { return Ok(None) };
    check_regular(path, &metadata, uid)?;
    open_checked(path, uid)
}

/// The open and the `fstat` of [`open_regular`], which stand on their own when the `lstat` before them is
/// outdated: a link is refused by the kernel, a FIFO is opened without waiting for a writer and then refused.
pub(crate) fn open_checked(path: &Path, uid: u32) -> Result<Option<(File, Metadata)>, StoreError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err(unexpected(path, Found::Symlink)),
        Err(errno) => return Err(io(IoOp::Read, path, errno.into())),
    };
    let metadata = file.metadata().map_err(|source| io(IoOp::Inspect, path, source))?;
    check_regular(path, &metadata, uid)?;
    Ok(Some((file, metadata)))
}

/// Reads an opened file of at most `max` bytes into a buffer that is zeroized when dropped; a larger file is
/// [`CorruptReason::TooLarge`] (the error names `path`).
pub(crate) fn read_limited(
    path: &Path,
    file: &File,
    metadata: &Metadata,
    max: u64,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let too_large = || StoreError::Corrupt { path: path.to_owned(), reason: CorruptReason::TooLarge { max } };
    if metadata.len() > max {
        return Err(too_large());
    }
    // Sized up front so the buffer (which may hold passphrases) is not reallocated, leaving a copy behind.
    let expected = usize::try_from(metadata.len()).unwrap_or(0);
    let mut bytes = Zeroizing::new(Vec::with_capacity(expected.saturating_add(1)));
    file.take(max + 1).read_to_end(&mut bytes).map_err(|source| io(IoOp::Read, path, source))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Whether [`prepare_dir`] may create a missing directory and tighten a loose one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Create it (mode 0700, parents too) and remove group and other permissions.
    Yes,
    /// Look only.
    No,
}

/// Why the directory cannot be used as it is.
#[derive(Debug)]
pub(crate) enum DirProblem {
    /// Not a directory, or not this user's (or a link of a user the store does not trust): nothing in it is read
    /// or written.
    Untrusted(StoreError),
    /// It does not exist and could not be created.
    Missing(StoreError),
    /// This user's, but open to group or others and its mode could not be tightened: what is in it may be read,
    /// nothing is written into it.
    Loose(StoreError),
}

/// What [`prepare_dir`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirState {
    /// A directory of this user, open to nobody else.
    Ready,
    /// Nothing there, and [`Repair::No`].
    Absent,
}

/// Checks the directory by the rules of the crate docs, and with [`Repair::Yes`] creates it when missing and
/// removes group and other permissions (logging that once, at warn).
pub(crate) fn prepare_dir(dir: &Path, uid: u32, repair: Repair) -> Result<DirState, DirProblem> {
    let Some(link) = inspect(dir).map_err(DirProblem::Untrusted)? else {
        if repair == Repair::No {
            return Ok(DirState::Absent);
        }
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| DirProblem::Missing(io(IoOp::CreateDir, dir, source)))?;
        tracing::debug!(path = %dir.display(), "created the state directory");
        return prepare_dir(dir, uid, Repair::No).map(|_| DirState::Ready);
    };
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if link.file_type().is_symlink() {
        // A link someone set up to put the state elsewhere (a read-only root file system with a data partition)
        // is followed; a link another user could have planted is not.
        if link.uid() != 0 && link.uid() != uid {
            return Err(DirProblem::Untrusted(unexpected(dir, Found::UntrustedSymlink { uid: link.uid() })));
        }
    } else {
        flags |= OFlags::NOFOLLOW;
    }
    let handle = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::NOTDIR | Errno::NOENT) => return Err(DirProblem::Untrusted(unexpected(dir, Found::NotADirectory))),
        Err(Errno::LOOP) => return Err(DirProblem::Untrusted(unexpected(dir, Found::Symlink))),
        Err(errno) => return Err(DirProblem::Untrusted(io(IoOp::OpenDir, dir, errno.into()))),
    };
    let metadata = handle.metadata().map_err(|source| DirProblem::Untrusted(io(IoOp::Inspect, dir, source)))?;
    if !metadata.is_dir() {
        return Err(DirProblem::Untrusted(unexpected(dir, Found::NotADirectory)));
    }
    if metadata.uid() != uid {
        return Err(DirProblem::Untrusted(unexpected(dir, Found::ForeignOwner { uid: metadata.uid(), expected: uid })));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & OTHERS != 0 && repair == Repair::Yes {
        // On the open handle: what was checked is what is changed.
        handle
            .set_permissions(Permissions::from_mode(mode & !OTHERS))
            .map_err(|source| DirProblem::Loose(io(IoOp::Tighten, dir, source)))?;
        tracing::warn!(
            path = %dir.display(),
            was = format_args!("{:o}", mode & 0o777),
            now = format_args!("{:o}", (mode & !OTHERS) & 0o777),
            "state directory was open to other users; removed their permissions"
        );
    }
    Ok(DirState::Ready)
}

/// Checks that the directory can be written now (a read-only mount, an immutable directory, missing permission):
/// `access(W_OK)`, which writes nothing.
pub(crate) fn check_writable(dir: &Path) -> Result<(), StoreError> {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).map_err(|errno| io(IoOp::CheckWritable, dir, errno.into()))
}

/// Points in a replacement after which the fault-injection tests stop it.
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
    /// The next operation fails with an I/O error; the replacement cleans up as it would after a real one.
    Fail,
    /// The process dies here: the replacement returns at once and leaves everything as it is.
    Crash,
}

/// A hook called after each step of a replacement, which may inject a fault.
pub(crate) type Hook<'a> = &'a mut dyn FnMut(Step) -> Option<Fault>;

/// One file replaced atomically: `path` in `dir`, written as `temp` first.
pub(crate) struct Replace<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) path: &'a Path,
    pub(crate) temp: &'a Path,
}

/// How a replacement stopped early.
enum Abort {
    Failed(StoreError),
    Crashed(StoreError),
}

impl Replace<'_> {
    /// Replaces the file with `bytes`, atomically and durably: the directory is checked (and created or
    /// tightened), a stale temporary file of ours is removed, a new one is created with `O_CREAT | O_EXCL |
    /// O_NOFOLLOW` and mode 0600, written and flushed, then renamed over the file, and the directory is flushed.
    /// What is at `path` is replaced only when it is a regular file of this user. After a failure the old file is
    /// still in place (unless the failure is [`IoOp::SyncDir`]) and the temporary file is gone.
    pub(crate) fn run(&self, bytes: &[u8], hook: Hook<'_>) -> Result<(), StoreError> {
        match self.try_run(bytes, hook) {
            Ok(()) => Ok(()),
            Err(Abort::Crashed(err)) => Err(err),
            Err(Abort::Failed(err)) => {
                // Before the rename this removes our partial file; after it there is nothing left to remove. Only
                // a regular file of ours: whatever else is there was not put there by us.
                if let Ok(Some(metadata)) = inspect(self.temp)
                    && check_regular(self.temp, &metadata, euid()).is_ok()
                    && let Err(cleanup) = std::fs::remove_file(self.temp)
                    && cleanup.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(
                        path = %self.temp.display(),
                        error = %cleanup,
                        "cannot remove temporary file after a failed save"
                    );
                }
                Err(err)
            }
        }
    }

    fn try_run(&self, bytes: &[u8], hook: Hook<'_>) -> Result<(), Abort> {
        let uid = euid();
        let fail = |op, path: &Path| {
            let path = path.to_owned();
            move |source| Abort::Failed(StoreError::Io { op, path, source })
        };
        let mut checkpoint = |step: Step| -> Result<(), Abort> {
            match hook(step) {
                None => Ok(()),
                Some(fault) => {
                    let err = io(IoOp::WriteTemp, self.temp, io::Error::other(format!("injected at {step:?}")));
                    Err(match fault {
                        Fault::Fail => Abort::Failed(err),
                        Fault::Crash => Abort::Crashed(err),
                    })
                }
            }
        };

        prepare_dir(self.dir, uid, Repair::Yes).map_err(|problem| match problem {
            DirProblem::Untrusted(err) | DirProblem::Missing(err) | DirProblem::Loose(err) => Abort::Failed(err),
        })?;
        checkpoint(Step::CreatedDir)?;

        // A crash can leave a temporary file behind, possibly with another mode; start from nothing. Anything but
        // a regular file of ours under that name was put there by someone else and is left alone.
        if let Some(metadata) = inspect(self.temp).map_err(Abort::Failed)? {
            check_regular(self.temp, &metadata, uid).map_err(Abort::Failed)?;
            match std::fs::remove_file(self.temp) {
                Ok(()) => tracing::debug!(path = %self.temp.display(), "removed a stale temporary file"),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(fail(IoOp::RemoveStaleTemp, self.temp)(source)),
            }
        }
        checkpoint(Step::RemovedStaleTemp)?;

        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut file = rustix::fs::open(self.temp, flags, Mode::from_raw_mode(FILE_MODE))
            .map(File::from)
            .map_err(|errno| fail(IoOp::CreateTemp, self.temp)(errno.into()))?;
        // The umask may have removed bits from the mode above but cannot add any; make it exact.
        file.set_permissions(Permissions::from_mode(FILE_MODE)).map_err(fail(IoOp::CreateTemp, self.temp))?;
        checkpoint(Step::CreatedTemp)?;

        let (head, tail) = bytes.split_at_checked(bytes.len() / 2).unwrap_or((bytes, &[]));
        file.write_all(head).map_err(fail(IoOp::WriteTemp, self.temp))?;
        checkpoint(Step::WroteHalf)?;
        file.write_all(tail).map_err(fail(IoOp::WriteTemp, self.temp))?;
        checkpoint(Step::WroteAll)?;
        file.sync_all().map_err(fail(IoOp::SyncTemp, self.temp))?;
        drop(file);
        checkpoint(Step::SyncedTemp)?;

        // Never rename over something the store did not write: a link, a directory, another user's file.
        if let Some(metadata) = inspect(self.path).map_err(Abort::Failed)? {
            check_regular(self.path, &metadata, uid).map_err(Abort::Failed)?;
        }
        std::fs::rename(self.temp, self.path).map_err(fail(IoOp::Replace, self.path))?;
        checkpoint(Step::Renamed)?;
        sync_dir(self.dir).map_err(fail(IoOp::SyncDir, self.dir))?;
        checkpoint(Step::SyncedDir)?;
        Ok(())
    }
}

/// Flushes the directory, which makes a rename in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    File::from(rustix::fs::open(dir, flags, Mode::empty())?).sync_all()
}
