//! Fault injection after every write step, the states a crash can leave on disk, corrupt files, modes and
//! secrecy of errors and logs.

use std::fs::{self, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};
use wifiprov_proto::ErrorChain;

use super::*;
use crate::error::CorruptReason;
use crate::files::{Fault, Step};

const SECRET_A: &str = "alpha-passphrase-1";
const SECRET_B: &str = "bravo-passphrase-2";

fn list(names: &[&str], secret: &str) -> NetworkList {
    let mut list = NetworkList::new();
    for name in names {
        let network = SavedNetwork::new(
            Ssid::try_from(*name).expect("valid SSID"),
            NetworkSecurity::WpaPsk,
            Some(Passphrase::try_from(secret).expect("valid passphrase")),
        )
        .expect("valid network");
        list.add_or_update(network, None).expect("room");
    }
    list
}

/// The exact encoding, secrets included: equal fingerprints mean equal lists.
fn fingerprint(list: &NetworkList) -> Vec<u8> {
    format::encode(list).expect("encodes").to_vec()
}

fn old_list() -> NetworkList {
    list(&["home", "office"], SECRET_A)
}

fn new_list() -> NetworkList {
    list(&["cafe", "home", "office", "airport"], SECRET_B)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

fn store_in(dir: &tempfile::TempDir) -> NetworkStore {
    NetworkStore::open(dir.path().join("state"))
}

#[test]
fn fault_after_every_step_leaves_old_or_new() {
    for step in Step::ALL {
        for fault in [Fault::Fail, Fault::Crash] {
            let tmp = tempfile::tempdir().expect("temp dir");
            let store = store_in(&tmp);
            store.save(&old_list()).expect("first save");

            let result = store.save_with(&new_list(), &mut |at| (at == step).then_some(fault));
            assert!(result.is_err(), "{step:?} {fault:?}: the injected fault was not reported");

            let loaded = store.load().unwrap_or_else(|err| panic!("{step:?} {fault:?}: {err:#}"));
            let expected = if matches!(step, Step::Renamed | Step::SyncedDir) { new_list() } else { old_list() };
            assert_eq!(fingerprint(&loaded), fingerprint(&expected), "{step:?} {fault:?}");
            if fault == Fault::Fail {
                assert!(!store.temp.exists(), "{step:?}: a failed save left its temporary file");
            }

            // Whatever was left behind, the next save works and is complete.
            let next = list(&["next"], SECRET_B);
            store.save(&next).unwrap_or_else(|err| panic!("{step:?} {fault:?}: save after fault: {err:#}"));
            assert_eq!(fingerprint(&store.load().expect("loads")), fingerprint(&next));
            assert!(!store.temp.exists());
            assert_eq!(mode(store.path()), 0o600);
        }
    }
}

#[test]
fn fault_during_the_first_save_leaves_no_list_or_the_new_one() {
    for step in Step::ALL {
        for fault in [Fault::Fail, Fault::Crash] {
            let tmp = tempfile::tempdir().expect("temp dir");
            let store = store_in(&tmp);
            let _ = store.save_with(&new_list(), &mut |at| (at == step).then_some(fault));
            let loaded = store.load().unwrap_or_else(|err| panic!("{step:?} {fault:?}: {err:#}"));
            if matches!(step, Step::Renamed | Step::SyncedDir) {
                assert_eq!(fingerprint(&loaded), fingerprint(&new_list()), "{step:?} {fault:?}");
            } else {
                assert!(loaded.is_empty(), "{step:?} {fault:?}");
            }
        }
    }
}

#[test]
fn a_temporary_file_in_any_state_is_ignored() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = store_in(&tmp);
    store.save(&old_list()).expect("save");
    let new = fingerprint(&new_list());
    for len in 0..=new.len() {
        fs::write(&store.temp, new.get(..len).expect("in bounds")).expect("write temp");
        assert_eq!(fingerprint(&store.load().expect("loads")), fingerprint(&old_list()), "temp of {len} bytes");
    }
    // A stale temporary file with a loose mode is replaced, not reused.
    fs::set_permissions(&store.temp, Permissions::from_mode(0o644)).expect("chmod");
    store.save(&new_list()).expect("save over a stale temp");
    assert!(!store.temp.exists());
    assert_eq!(mode(store.path()), 0o600);
}

#[test]
fn a_truncated_list_is_corrupt_and_left_alone() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = store_in(&tmp);
    store.save(&old_list()).expect("save");
    let whole = fs::read(store.path()).expect("read");
    // The last byte is the trailing newline; dropping only that leaves the same document.
    for len in 0..whole.len() - 1 {
        let truncated = whole.get(..len).expect("in bounds");
        fs::write(store.path(), truncated).expect("truncate");
        match store.load() {
            Err(StoreError::Corrupt { path, .. }) => assert_eq!(path, store.path()),
            other => panic!("truncated to {len} bytes: {other:?}"),
        }
        assert_eq!(fs::read(store.path()).expect("still there"), truncated, "load changed the file");
    }
}

#[test]
fn an_unknown_version_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = store_in(&tmp);
    store.save(&old_list()).expect("save");
    let future = String::from_utf8(fs::read(store.path()).expect("read")).expect("UTF-8").replacen(
        "\"version\": 1",
        "\"version\": 2",
        1,
    );
    fs::write(store.path(), &future).expect("write");
    let err = store.load().expect_err("version 2");
    assert!(
        matches!(&err, StoreError::Corrupt { reason: CorruptReason::UnsupportedVersion { version: 2, .. }, .. }),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(store.path()).expect("still there"), future);
}

#[test]
fn an_oversized_file_is_corrupt() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = store_in(&tmp);
    fs::create_dir_all(store.dir()).expect("mkdir");
    let oversized = usize::try_from(format::MAX_FILE_LEN).expect("fits") + 1;
    fs::write(store.path(), vec![b' '; oversized]).expect("write");
    assert!(matches!(store.load(), Err(StoreError::Corrupt { reason: CorruptReason::TooLarge { .. }, .. })));
}

#[test]
fn quarantine_moves_only_corrupt_files_aside() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = store_in(&tmp);
    assert!(matches!(store.quarantine_corrupt(), Err(StoreError::Io { op: IoOp::MoveAside, .. })));

    store.save(&old_list()).expect("save");
    assert!(matches!(store.quarantine_corrupt(), Err(StoreError::NotCorrupt { .. })));
    assert_eq!(fingerprint(&store.load().expect("still there")), fingerprint(&old_list()));

    for n in 1..=3 {
        let garbage = format!("{{\"version\": 1, \"garbage\": {n}");
        fs::write(store.path(), &garbage).expect("write");
        assert!(matches!(store.load(), Err(StoreError::Corrupt { .. })));
        let moved = store.quarantine_corrupt().expect("quarantined");
        assert_eq!(moved, store.dir().join(format!("networks.json.corrupt-{n}")));
        assert_eq!(fs::read_to_string(&moved).expect("kept"), garbage);
        assert!(store.load().expect("empty now").is_empty());
    }
}

#[test]
fn the_directory_and_file_are_private() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = NetworkStore::open(tmp.path().join("a/b"));
    store.save(&old_list()).expect("save creates the directories");
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&tmp.path().join("a")), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    // A file someone loosened is tightened by the next save (the rename replaces it with a new inode).
    fs::set_permissions(store.path(), Permissions::from_mode(0o644)).expect("chmod");
    assert!(store.load().is_ok());
    store.save(&new_list()).expect("save");
    assert_eq!(mode(store.path()), 0o600);
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let blocker = tmp.path().join("not-a-dir");
    fs::write(&blocker, b"x").expect("write");
    let store = NetworkStore::open(&blocker);
    let err = store.save(&old_list()).expect_err("directory is a file");
    assert!(matches!(err, StoreError::Unexpected { found: crate::Found::NotADirectory, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{} is not a directory", blocker.display()));
    let store = NetworkStore::open(blocker.join("below"));
    let err = store.save(&old_list()).expect_err("parent is a file");
    assert!(matches!(err, StoreError::Io { op: IoOp::Inspect, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("cannot inspect {}", blocker.join("below").display()));

    let store = NetworkStore::open(tmp.path());
    fs::create_dir(store.path()).expect("a directory where the file should be");
    let err = store.load().expect_err("not a file");
    assert!(matches!(err, StoreError::Unexpected { found: crate::Found::Directory, .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{} is a directory, not a regular file", store.path().display()));
    let err = store.save(&old_list()).expect_err("never replaces a directory");
    assert!(matches!(err, StoreError::Unexpected { found: crate::Found::Directory, .. }), "{err:?}");
    assert!(!store.temp.exists());
    assert!(store.path().is_dir());
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_and_errors_never_contain_a_passphrase() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let mut reports = String::new();
    // With a single dispatcher registered, tracing computes a call site's interest from the default of whichever
    // thread registers it first: a test on another thread (with no subscriber) would turn this one's events off.
    // A second registered dispatcher makes it combine every dispatcher's interest instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    tracing::subscriber::with_default(subscriber, || {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = store_in(&tmp);
        store.save(&old_list()).expect("save");
        store.load().expect("load");
        let _ = store.save_with(&new_list(), &mut |at| (at == Step::WroteHalf).then_some(Fault::Crash));
        store.save(&new_list()).expect("save over the stale temp");
        let text = fs::read_to_string(store.path()).expect("read");
        for (from, to) in [(SECRET_B, "short"), ("\"ssid\"", "\"sid\""), ("63616665", "63616666"), ("version", "vers")]
        {
            fs::write(store.path(), text.replacen(from, to, 1)).expect("write");
            let err = store.load().expect_err("corrupt");
            reports.push_str(&format!("{err:#?}\n"));
            reports.push_str(&format!("{}\n", ErrorChain(&err)));
        }
        fs::set_permissions(store.path(), Permissions::from_mode(0o644)).expect("chmod");
        store.quarantine_corrupt().expect("quarantined");
    });
    let logs = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8 logs");
    assert!(logs.contains("saved networks") && logs.contains("moved a corrupt"), "{logs}");
    assert!(reports.contains("networks[0].passphrase is not a valid passphrase"), "{reports}");
    for secret in [SECRET_A, SECRET_B, "passphrase-"] {
        assert!(!logs.contains(secret), "{logs}");
        assert!(!reports.contains(secret), "{reports}");
    }
}
