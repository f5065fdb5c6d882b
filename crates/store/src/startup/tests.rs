//! The rules of the crate docs, one state at a time: what `start` reports, what it runs with, whether saves work,
//! and that what it found is left byte for byte as it was. Then `O_NOFOLLOW` and friends against swaps that
//! happen after the checks, and the counter.
//!
//! Some states need another user's files (`lchown`) or a directory that cannot be written: as root these use
//! `chown` and `chattr +i`, which the tests run as here; a test that needs root says so when it is not.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};

use crate::files::{self, Fault, Replace, Step};
use crate::{CorruptReason, Counter, Found, IoOp, NetworkStore, StartStatus, StoreError};

/// The uid files of "another user" get.
const NOBODY: u32 = 65534;

fn list(names: &[&str]) -> NetworkList {
    let mut list = NetworkList::new();
    for name in names {
        let passphrase = Passphrase::try_from("correct-horse").expect("valid");
        let network =
            SavedNetwork::new(Ssid::try_from(*name).expect("valid"), NetworkSecurity::WpaPsk, Some(passphrase))
                .expect("valid network");
        list.add_or_update(network, None).expect("room");
    }
    list
}

fn names(list: &NetworkList) -> Vec<String> {
    list.iter().map(|n| n.ssid().to_string()).collect()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("exists").permissions().mode() & 0o777
}

/// A state directory `state` in a fresh temporary directory, holding `home` and `office`.
fn saved_state() -> (tempfile::TempDir, NetworkStore) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = NetworkStore::open(tmp.path().join("state"));
    store.save(&list(&["home", "office"])).expect("save");
    (tmp, store)
}

/// Everything below `dir`, with each entry's kind, mode, owner and contents (or link target): equal snapshots
/// mean nothing was touched.
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = fs::symlink_metadata(&path).expect("lstat");
        let kind = metadata.file_type();
        let what = if kind.is_symlink() {
            format!("link -> {}", fs::read_link(&path).expect("readlink").display())
        } else if kind.is_dir() {
            let mut children: Vec<_> =
                fs::read_dir(&path).expect("readdir").map(|e| e.expect("entry").path()).collect();
            children.sort();
            pending.extend(children);
            "dir".to_owned()
        } else if kind.is_file() {
            format!("file sha256 {}", hex::encode(Sha256::digest(fs::read(&path).expect("read"))))
        } else {
            "special".to_owned()
        };
        entries.push((path, format!("{what} mode {:o} uid {}", metadata.mode() & 0o7777, metadata.uid())));
    }
    entries.sort();
    entries
}

fn is_root() -> bool {
    files::euid() == 0
}

/// Gives `path` (not what it links to) to another user.
fn give_away(path: &Path) {
    assert!(is_root(), "this test needs root: it gives a file to another user (lchown)");
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).expect("lchown");
}

/// Makes `dir` impossible to write into until dropped: `chattr +i` as root (root ignores modes), mode 0500
/// otherwise.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> Self {
        if is_root() {
            let status = Command::new("chattr").arg("+i").arg(dir).status().expect("chattr (e2fsprogs) is needed");
            assert!(status.success(), "chattr +i {} failed; the file system must support it", dir.display());
        } else {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o500)).expect("chmod");
        }
        Self(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if is_root() {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
        }
    }
}

/// Starts the store and checks the rules every refused state shares: nothing touched, no list, saves refused
/// without touching anything either.
fn refused(store: NetworkStore) -> StoreError {
    let before = snapshot(store.dir());
    let started = store.start();
    let StartStatus::Refused(error) = started.status else { panic!("not refused: {:?}", started.status) };
    assert!(started.store.saves_refused());
    assert_eq!(snapshot(started.store.dir()), before, "start touched something");
    let err = started.store.save(&list(&["new"])).expect_err("saves are refused");
    assert!(matches!(err, StoreError::SavesRefused { .. }), "{err:?}");
    assert_eq!(snapshot(started.store.dir()), before, "a refused save touched something");
    error
}

#[test]
fn a_missing_directory_is_created_private() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = NetworkStore::open(tmp.path().join("a/state"));
    let started = store.start();
    assert!(matches!(started.status, StartStatus::Ready), "{:?}", started.status);
    assert!(started.networks.is_empty());
    assert_eq!(mode(started.store.dir()), 0o700);
    assert_eq!(mode(&tmp.path().join("a")), 0o700);
    started.store.save(&list(&["home"])).expect("saves work");
}

#[test]
fn a_loose_directory_and_file_are_tightened_and_loaded() {
    let (_tmp, store) = saved_state();
    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o777)).expect("chmod");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
    let bytes = fs::read(store.path()).expect("read");
    let started = store.start();
    assert!(matches!(started.status, StartStatus::Ready), "{:?}", started.status);
    assert_eq!(names(&started.networks), ["home", "office"]);
    assert_eq!(mode(started.store.dir()), 0o700);
    assert_eq!(mode(started.store.path()), 0o600);
    assert_eq!(fs::read(started.store.path()).expect("read"), bytes, "contents untouched");
}

#[test]
fn a_corrupt_file_is_moved_aside_and_saves_work() {
    let (_tmp, store) = saved_state();
    fs::write(store.path(), b"{\"version\": 1, \"cut").expect("write");
    let started = store.start();
    let StartStatus::Quarantined { error, moved_to } = started.status else { panic!("{:?}", started.status) };
    assert!(matches!(error, StoreError::Corrupt { reason: CorruptReason::Syntax(_), .. }), "{error:?}");
    assert_eq!(moved_to, started.store.dir().join("networks.json.corrupt-1"));
    assert_eq!(fs::read(&moved_to).expect("kept"), b"{\"version\": 1, \"cut");
    assert!(started.networks.is_empty());
    started.store.save(&list(&["cafe"])).expect("saves work");
}

#[test]
fn an_oversized_file_is_left_alone() {
    let (_tmp, store) = saved_state();
    let oversized = usize::try_from(crate::format::MAX_FILE_LEN).expect("fits") + 1;
    fs::write(store.path(), vec![b' '; oversized]).expect("write");
    // A mode open to others is not fixed either: the file is not used.
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
    let error = refused(store);
    assert!(matches!(error, StoreError::Corrupt { reason: CorruptReason::TooLarge { .. }, .. }), "{error:?}");
}

#[test]
fn a_newer_version_is_left_for_the_build_that_wrote_it() {
    let (_tmp, store) = saved_state();
    let text = fs::read_to_string(store.path()).expect("read").replacen("\"version\": 1", "\"version\": 2", 1);
    fs::write(store.path(), text).expect("write");
    let error = refused(store);
    assert!(matches!(error, StoreError::Corrupt { reason: CorruptReason::UnsupportedVersion { .. }, .. }));
}

#[test]
fn a_directory_a_link_or_a_fifo_in_place_of_the_list_is_left_alone() {
    let (tmp, store) = saved_state();
    let elsewhere = tmp.path().join("elsewhere.json");
    fs::rename(store.path(), &elsewhere).expect("move the list away");

    fs::create_dir(store.path()).expect("mkdir");
    fs::write(store.path().join("inside"), b"data").expect("write");
    let error = refused(store.clone());
    assert!(matches!(error, StoreError::Unexpected { found: Found::Directory, .. }), "{error:?}");
    fs::remove_dir_all(store.path()).expect("cleanup");

    // A link to a valid list: still not followed.
    symlink(&elsewhere, store.path()).expect("symlink");
    let target = fs::read(&elsewhere).expect("read");
    let error = refused(store.clone());
    assert!(matches!(error, StoreError::Unexpected { found: Found::Symlink, .. }), "{error:?}");
    assert_eq!(fs::read(&elsewhere).expect("read"), target);
    let err = store.load().expect_err("load does not follow it either");
    assert!(matches!(err, StoreError::Unexpected { found: Found::Symlink, .. }), "{err:?}");
    fs::remove_file(store.path()).expect("cleanup");

    let status = Command::new("mkfifo").arg(store.path()).status().expect("mkfifo");
    assert!(status.success());
    let error = refused(store);
    assert!(matches!(error, StoreError::Unexpected { found: Found::SpecialFile, .. }), "{error:?}");
}

#[test]
fn another_users_list_or_directory_is_not_read() {
    let (_tmp, store) = saved_state();
    give_away(store.path());
    let error = refused(store.clone());
    assert!(matches!(error, StoreError::Unexpected { found: Found::ForeignOwner { uid: NOBODY, .. }, .. }));

    std::os::unix::fs::lchown(store.path(), Some(0), Some(0)).expect("lchown back");
    give_away(store.dir());
    let error = refused(store);
    assert!(matches!(error, StoreError::Unexpected { found: Found::ForeignOwner { uid: NOBODY, .. }, .. }));
}

#[test]
fn a_linked_directory_is_followed_only_when_the_link_is_trusted() {
    let (tmp, store) = saved_state();
    let link = tmp.path().join("link");
    symlink(store.dir(), &link).expect("symlink");
    let started = NetworkStore::open(&link).start();
    assert!(matches!(started.status, StartStatus::Ready), "{:?}", started.status);
    assert_eq!(names(&started.networks), ["home", "office"]);
    started.store.save(&list(&["cafe"])).expect("saves through a trusted link");
    assert_eq!(names(&store.load().expect("load")), ["cafe"]);

    give_away(&link);
    let error = refused(NetworkStore::open(&link));
    assert!(matches!(error, StoreError::Unexpected { found: Found::UntrustedSymlink { uid: NOBODY }, .. }));

    let dangling = tmp.path().join("dangling");
    symlink(tmp.path().join("nothing"), &dangling).expect("symlink");
    let error = refused(NetworkStore::open(&dangling));
    assert!(matches!(error, StoreError::Unexpected { found: Found::NotADirectory, .. }), "{error:?}");
    assert!(!tmp.path().join("nothing").exists(), "nothing was created through the link");
}

#[test]
fn a_file_in_place_of_the_directory_is_left_alone() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("state");
    fs::write(&path, b"not a directory").expect("write");
    let error = refused(NetworkStore::open(&path));
    assert!(matches!(error, StoreError::Unexpected { found: Found::NotADirectory, .. }), "{error:?}");
    assert_eq!(fs::read(&path).expect("read"), b"not a directory");
}

#[test]
fn anything_but_our_file_at_the_temporary_name_blocks_saves_but_not_the_list() {
    let (tmp, store) = saved_state();
    let target = tmp.path().join("target");
    fs::write(&target, b"precious").expect("write");
    symlink(&target, &store.temp).expect("symlink");
    let before = snapshot(tmp.path());
    let started = store.start();
    let StartStatus::Refused(error) = &started.status else { panic!("{:?}", started.status) };
    assert!(matches!(error, StoreError::Unexpected { found: Found::Symlink, .. }), "{error:?}");
    assert_eq!(names(&started.networks), ["home", "office"], "the list itself is fine");
    assert!(started.store.save(&list(&["x"])).is_err());
    assert_eq!(snapshot(tmp.path()), before);

    // A plain save (no start) refuses it as well, and leaves it.
    let err = NetworkStore::open(started.store.dir()).save(&list(&["x"])).expect_err("refused");
    assert!(matches!(err, StoreError::Unexpected { found: Found::Symlink, .. }), "{err:?}");
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_thousand_quarantined_files_leave_the_next_corrupt_one_in_place() {
    let (_tmp, store) = saved_state();
    for n in 1..=crate::store::MAX_QUARANTINED {
        fs::write(store.dir().join(format!("networks.json.corrupt-{n}")), format!("old {n}")).expect("write");
    }
    fs::write(store.path(), b"garbage").expect("write");
    fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).expect("chmod");
    let store_path = store.path().to_owned();
    let error = refused(store);
    assert!(matches!(error, StoreError::NotMovedAside { reason: CorruptReason::Syntax(_), .. }), "{error:?}");
    let message = wifiprov_proto::ErrorChain(&error).to_string();
    assert_eq!(
        message,
        format!(
            "saved-network file {path} is corrupt (not valid JSON) and could not be moved aside: cannot move aside \
             {path}: 1000 corrupt files were moved aside already",
            path = store_path.display()
        )
    );
}

#[test]
fn a_read_only_directory() {
    // With a corrupt file: it cannot be moved aside, so it stays, and nothing is written.
    let (_tmp, store) = saved_state();
    fs::write(store.path(), b"garbage").expect("write");
    let guard = ReadOnly::new(store.dir());
    let error = refused(store.clone());
    assert!(
        matches!(&error, StoreError::NotMovedAside { source, .. }
        if matches!(**source, StoreError::Io { op: IoOp::MoveAside, .. })),
        "{error:?}"
    );
    drop(guard);

    // With a valid list: it loads, and saves are tried and fail.
    let (_tmp, store) = saved_state();
    let bytes = fs::read(store.path()).expect("read");
    let _guard = ReadOnly::new(store.dir());
    let started = store.start();
    let StartStatus::NotWritable(error) = &started.status else { panic!("{:?}", started.status) };
    assert!(matches!(error, StoreError::Io { op: IoOp::CheckWritable, .. }), "{error:?}");
    assert_eq!(names(&started.networks), ["home", "office"]);
    let err = started.store.save(&list(&["new"])).expect_err("cannot write");
    assert!(matches!(err, StoreError::Io { op: IoOp::CreateTemp, .. }), "{err:?}");
    assert_eq!(fs::read(started.store.path()).expect("read"), bytes);
}

#[test]
fn a_missing_directory_that_cannot_be_created() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let parent = tmp.path().join("ro");
    fs::create_dir(&parent).expect("mkdir");
    let _guard = ReadOnly::new(&parent);
    let started = NetworkStore::open(parent.join("state")).start();
    let StartStatus::NotWritable(error) = &started.status else { panic!("{:?}", started.status) };
    assert!(matches!(error, StoreError::Io { op: IoOp::CreateDir, .. }), "{error:?}");
    assert!(started.networks.is_empty());
    assert!(!started.store.saves_refused(), "saves are still tried");
}

#[test]
fn the_open_never_follows_a_link_or_blocks_on_a_fifo() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let target = tmp.path().join("target");
    fs::write(&target, b"secret").expect("write");
    let link = tmp.path().join("link");
    symlink(&target, &link).expect("symlink");
    // The open itself, as after an lstat that saw a regular file: O_NOFOLLOW makes the kernel refuse.
    let err = files::open_checked(&link, files::euid()).expect_err("not followed");
    assert!(matches!(err, StoreError::Unexpected { found: Found::Symlink, .. }), "{err:?}");
    let fifo = tmp.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    // O_NONBLOCK: returns at once (without it, this would wait for a writer for ever).
    let err = files::open_checked(&fifo, files::euid()).expect_err("not a regular file");
    assert!(matches!(err, StoreError::Unexpected { found: Found::SpecialFile, .. }), "{err:?}");
}

#[test]
fn a_link_planted_after_the_checks_is_never_written_through() {
    let (tmp, store) = saved_state();
    let target = tmp.path().join("target");
    fs::write(&target, b"precious").expect("write");
    let bytes = fs::read(store.path()).expect("read");
    let new = crate::format::encode(&list(&["new"])).expect("encodes");

    // A link at the temporary name, after the stale one was removed: O_EXCL | O_NOFOLLOW refuse it.
    let replace = Replace { dir: &store.dir, path: &store.path, temp: &store.temp };
    let err = replace
        .run(&new, &mut |step| {
            if step == Step::RemovedStaleTemp {
                symlink(&target, &store.temp).expect("symlink");
            }
            None
        })
        .expect_err("refused");
    assert!(matches!(err, StoreError::Io { op: IoOp::CreateTemp, .. }), "{err:?}");
    assert_eq!(fs::read(&target).expect("read"), b"precious");
    assert!(fs::symlink_metadata(&store.temp).expect("still there").file_type().is_symlink(), "left in place");
    assert_eq!(fs::read(store.path()).expect("read"), bytes);
    fs::remove_file(&store.temp).expect("cleanup");

    // A link in place of the list, just before the rename: the rename does not replace it.
    let err = replace
        .run(&new, &mut |step| {
            if step == Step::SyncedTemp {
                fs::rename(store.path(), tmp.path().join("list")).expect("move");
                symlink(&target, store.path()).expect("symlink");
            }
            None
        })
        .expect_err("refused");
    assert!(matches!(err, StoreError::Unexpected { found: Found::Symlink, .. }), "{err:?}");
    assert_eq!(fs::read(&target).expect("read"), b"precious");
    assert!(fs::symlink_metadata(store.path()).expect("there").file_type().is_symlink());
    assert!(!store.temp.exists(), "our own temporary file is cleaned up");

    // The fault hook still works for a failure at the same point.
    fs::remove_file(store.path()).expect("cleanup");
    let err = replace.run(&new, &mut |step| (step == Step::SyncedTemp).then_some(Fault::Fail)).expect_err("fault");
    assert!(matches!(err, StoreError::Io { .. }));
}

#[test]
fn the_counter_keeps_the_same_rules() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("state");
    let counter = Counter::open(&dir, "failed-proofs").expect("valid name");
    assert_eq!(counter.load().expect("no directory yet"), 0);
    counter.save(3).expect("save");
    assert_eq!(counter.load().expect("load"), 3);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(counter.path()), 0o600);
    counter.save(u32::MAX).expect("save");
    assert_eq!(counter.load().expect("load"), u32::MAX);

    // A bad file is an error, and stays as it is.
    for bad in [b"wifiprov-counter 1 3 00\n".to_vec(), vec![b'9'; 257], Vec::new()] {
        fs::write(counter.path(), &bad).expect("write");
        let err = counter.load().expect_err("not trusted");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(fs::read(counter.path()).expect("read"), bad);
    }
    // A regular file of ours is replaced by a save, whatever it holds.
    counter.save(0).expect("save over a corrupt file");
    assert_eq!(counter.load().expect("load"), 0);

    // A link is neither read nor written through.
    let target = tmp.path().join("target");
    fs::write(&target, b"precious").expect("write");
    fs::remove_file(counter.path()).expect("rm");
    symlink(&target, counter.path()).expect("symlink");
    assert!(matches!(counter.load(), Err(StoreError::Unexpected { found: Found::Symlink, .. })));
    assert!(matches!(counter.save(1), Err(StoreError::Unexpected { found: Found::Symlink, .. })));
    assert_eq!(fs::read(&target).expect("read"), b"precious");
    assert!(fs::symlink_metadata(counter.path()).expect("there").file_type().is_symlink());
    fs::remove_file(counter.path()).expect("rm");

    // Another user's file or directory is not trusted.
    counter.save(5).expect("save");
    give_away(counter.path());
    assert!(matches!(counter.load(), Err(StoreError::Unexpected { found: Found::ForeignOwner { .. }, .. })));
    assert!(matches!(counter.save(6), Err(StoreError::Unexpected { found: Found::ForeignOwner { .. }, .. })));
    std::os::unix::fs::lchown(counter.path(), Some(0), Some(0)).expect("lchown back");
    give_away(&dir);
    assert!(matches!(counter.load(), Err(StoreError::Unexpected { found: Found::ForeignOwner { .. }, .. })));
}
