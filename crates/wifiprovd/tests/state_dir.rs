//! r12 (issue #12, "the daemon always comes up"): the real `wifiprovd` binary on a state directory in each bad
//! state. Each test prepares the directory, starts the daemon on it, provisions over HTTP with the client library
//! (proto-ver, a security 1 handshake, SetConfig, ApplyConfig, GetStatus until a final state), stops it with
//! SIGTERM, and checks three things: it served, it logged exactly one clear error about the state before the
//! first client request, and what it found is byte for byte (and mode and owner) as it was. Where the state
//! cannot be written, the provisioning must end as a failure (the network could not be saved), never as
//! "connected".
//!
//! These run as root here, where some states need help to exist at all: another user's file is made with
//! `lchown`; an unreadable file needs the daemon to run without `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH`
//! (`setpriv` drops them from its bounding set); a read-only state directory is a read-only bind mount in a
//! private mount namespace (`unshare --mount`), which the daemon runs inside. Run as another user, the
//! unreadable file is simply mode 000 and the mount namespace comes with a user namespace; the tests that need
//! another user's files say so and fail.

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wifiprov_client::{Client, ClientError, HttpClient, PollPolicy, ProvisionOutcome, TransportError};
use wifiprov_proto::messages::config::FailReason;
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::ClientSecurity;
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::process::{Process, Stream};

const POP: &str = "state-dir-pop";
/// The `fail_reason` the daemon reports for a network it joined but could not save (`esp::config`).
const NOT_SAVED: FailReason = FailReason::Other(100);
/// The owner of "another user's" files.
const NOBODY: u32 = 65534;
/// How long the daemon may take to come up or to stop.
const PATIENCE: Duration = Duration::from_secs(30);

/// A state directory `state` in a fresh temporary directory (mode 0700, as the daemon creates it), with the fast
/// scenario for the simulated radio next to it.
struct Setup {
    root: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::write(root.path().join("scenario.toml"), wifiprov_testkit::FAST_SCENARIO).expect("scenario");
        let setup = Self { root };
        std::fs::create_dir(setup.state()).expect("mkdir");
        std::fs::set_permissions(setup.state(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        setup
    }

    fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    fn list(&self) -> PathBuf {
        self.state().join("networks.json")
    }

    /// A valid list holding `office`, written by the store itself.
    fn save_office(&self) {
        use wifiprov_backend::{Passphrase, Ssid};
        use wifiprov_manager::networks::{NetworkList, NetworkSecurity, SavedNetwork};
        let passphrase = Passphrase::new("office-secret".to_owned()).expect("valid");
        let office =
            SavedNetwork::new(Ssid::try_from("office").expect("valid"), NetworkSecurity::Wpa3Sae, Some(passphrase))
                .expect("valid");
        let list = NetworkList::from_networks(8, vec![office]).expect("valid");
        wifiprov_store::NetworkStore::open(self.state()).save(&list).expect("save");
    }
}

/// How the daemon is started around its state directory.
enum Run {
    Plain,
    /// Without the capabilities that let root read any file.
    WithoutDacOverride,
    /// With this directory bind-mounted read-only, in a mount namespace of its own.
    ReadOnly(PathBuf),
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).expect("/proc/self")
}

fn give_away(path: &Path) {
    assert!(is_root(), "this test needs root: it gives a file to another user (lchown)");
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).expect("lchown");
}

/// Everything below `dir` with each entry's kind, mode, owner and contents (or link target).
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).expect("lstat");
        let kind = metadata.file_type();
        let what = if kind.is_symlink() {
            format!("link -> {}", std::fs::read_link(&path).expect("readlink").display())
        } else if kind.is_dir() {
            pending.extend(std::fs::read_dir(&path).expect("readdir").map(|e| e.expect("entry").path()));
            "dir".to_owned()
        } else {
            format!("file sha256 {}", hex::encode(Sha256::digest(std::fs::read(&path).expect("read"))))
        };
        entries.push((path, format!("{what} mode {:o} uid {}", metadata.mode() & 0o7777, metadata.uid())));
    }
    entries.sort();
    entries
}

/// Fails naming only the entries that differ.
fn assert_unchanged(before: &[(PathBuf, String)], after: &[(PathBuf, String)]) {
    let was: Vec<_> = before.iter().filter(|entry| !after.contains(entry)).collect();
    let is: Vec<_> = after.iter().filter(|entry| !before.contains(entry)).collect();
    assert!(was.is_empty() && is.is_empty(), "the state changed: was {was:?}, is {is:?}");
}

/// A finished run of the daemon: how provisioning ended, and the log.
struct Ran {
    outcome: ProvisionOutcome,
    log: String,
}

impl Ran {
    /// The lines logged at `level` before the first client request reached the manager: what start-up logged.
    /// The failed-proof counter's own complaint about a directory it cannot trust is not the store's, and is
    /// left out (see [`session`]).
    fn at_start(&self, level: &str) -> Vec<&str> {
        let marker = format!(" {level} ");
        self.log
            .lines()
            .take_while(|line| !line.contains("credentials received"))
            .filter(|line| line.contains(&marker) && !line.contains("count of failed proofs"))
            .collect()
    }

    /// Exactly one error at start, containing every fragment.
    fn one_error(&self, fragments: &[&str]) {
        let errors = self.at_start("ERROR");
        assert_eq!(errors.len(), 1, "expected one error at start:\n{}", self.log);
        for fragment in fragments {
            assert!(errors.iter().all(|e| e.contains(fragment)), "{fragment:?} missing:\n{}", self.log);
        }
    }

    fn not_saved(&self) {
        assert!(
            matches!(self.outcome, ProvisionOutcome::Failed(NOT_SAVED)),
            "provisioning must fail as not saved, got {:?}:\n{}",
            self.outcome,
            self.log
        );
    }

    fn connected(&self) {
        assert!(matches!(self.outcome, ProvisionOutcome::Connected(_)), "{:?}:\n{}", self.outcome, self.log);
    }
}

/// A client with an established security 1 session. When the state directory itself cannot be trusted, the
/// count of failed proofs cannot be read either, and the daemon starts with the free failures spent
/// (`guessing.rs`): its first handshakes are refused with 429 for a second. That wait is the device's, so it is
/// waited out here, bounded.
async fn session(addr: SocketAddr) -> Client<HttpClient> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut client = Client::new(HttpClient::connect(addr).await.expect("connects"));
        client.version().await.expect("proto-ver");
        let security = ClientSecurity::sec1(ProofOfPossession::from(POP));
        match client.establish(security, &mut SeededRandom::new(12)).await {
            Ok(()) => return client,
            Err(ClientError::Transport(TransportError::Status { status: 429, .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("security 1 handshake: {error:?}"),
        }
    }
}

/// Starts the daemon on `setup`, provisions `home` over HTTP, stops it with SIGTERM.
async fn run(setup: &Setup, how: Run) -> Ran {
    let daemon = env!("CARGO_BIN_EXE_wifiprovd");
    let mut args: Vec<String> =
        ["--listen", "127.0.0.1:0", "--security", "1", "--pop", POP, "--connect-delay-ms", "10"]
            .map(str::to_owned)
            .into();
    args.push("--always-provision".to_owned());
    args.push("--state-dir".to_owned());
    args.push(setup.state().display().to_string());
    args.push("--scenario".to_owned());
    args.push(setup.root.path().join("scenario.toml").display().to_string());
    let mut command = match how {
        Run::Plain => Command::new(daemon),
        Run::WithoutDacOverride if is_root() => {
            let mut command = Command::new("setpriv");
            command.args(["--bounding-set", "-dac_override,-dac_read_search", "--", daemon]);
            command
        }
        Run::WithoutDacOverride => Command::new(daemon),
        Run::ReadOnly(dir) => {
            let mut command = Command::new("unshare");
            if !is_root() {
                command.arg("--map-root-user");
            }
            command.args(["--mount", "--propagation", "private", "sh", "-c"]);
            command.arg(r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#);
            command.arg("sh").arg(dir).arg(daemon);
            command
        }
    };
    command.args(&args).env("RUST_LOG", "info");
    let mut process = Process::spawn("wifiprovd", command);
    let Some(line) = process.wait_for_line(Stream::Stdout, PATIENCE, |l| l.starts_with("listening on ")) else {
        panic!("the daemon did not come up:\n{process}");
    };
    let addr: SocketAddr = line.trim_start_matches("listening on ").parse().expect("an address");

    let mut client = session(addr).await;
    let poll = PollPolicy {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        deadline: Duration::from_secs(20),
    };
    let outcome = client.provision(b"home", b"correct-horse", poll, |_| {}).await.expect("provisioning ends");
    drop(client);

    assert!(Command::new("kill").args(["-TERM", &process.id().to_string()]).status().expect("kill").success());
    let status = tokio::task::spawn_blocking(move || {
        let status = process.wait(PATIENCE);
        (status, process)
    })
    .await
    .expect("joins");
    let (status, process) = status;
    assert!(status.is_some_and(|s| s.success()), "graceful shutdown:\n{process}");
    let log = process.output(Stream::Stderr);
    assert!(!log.contains("panicked"), "{log}");
    Ran { outcome, log }
}

#[tokio::test]
async fn r12_an_oversized_list_is_left_alone() {
    let setup = Setup::new();
    std::fs::write(setup.list(), vec![b' '; (1 << 20) + 1]).expect("write");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", "networks.json is corrupt", "larger than 1048576 bytes"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_an_unreadable_list_is_left_alone() {
    let setup = Setup::new();
    setup.save_office();
    std::fs::set_permissions(setup.list(), std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::WithoutDacOverride).await;
    ran.one_error(&["left as found", "cannot read", "networks.json", "Permission denied"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_directory_in_place_of_the_list_is_left_alone() {
    let setup = Setup::new();
    std::fs::create_dir(setup.list()).expect("mkdir");
    std::fs::write(setup.list().join("keep"), b"someone's data").expect("write");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", "networks.json is a directory"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_corrupt_list_in_a_read_only_directory_is_left_alone() {
    let setup = Setup::new();
    std::fs::write(setup.list(), b"{\"version\": 1, \"netw").expect("write");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::ReadOnly(setup.state())).await;
    ran.one_error(&["left as found", "is corrupt (not valid JSON) and could not be moved aside", "Read-only"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_read_only_directory_answers_a_provisioning_as_not_saved() {
    // The reported bug: the client was told it was provisioned, and the network was gone after a restart.
    let setup = Setup::new();
    setup.save_office();
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::ReadOnly(setup.state())).await;
    ran.one_error(&["cannot be written", "cannot write into directory", "Read-only"]);
    ran.not_saved();
    assert!(ran.log.contains("could not write the saved networks"), "{}", ran.log);
    // Nothing was saved, as the client was told.
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_thousand_quarantined_files_leave_the_next_corrupt_one_in_place() {
    let setup = Setup::new();
    for n in 1..=1000 {
        std::fs::write(setup.state().join(format!("networks.json.corrupt-{n}")), format!("old {n}")).expect("write");
    }
    std::fs::write(setup.list(), b"not json").expect("write");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["could not be moved aside", "1000 corrupt files were moved aside already"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_link_in_place_of_the_list_is_not_followed() {
    let setup = Setup::new();
    setup.save_office();
    let elsewhere = setup.root.path().join("elsewhere.json");
    std::fs::rename(setup.list(), &elsewhere).expect("move");
    symlink(&elsewhere, setup.list()).expect("symlink");
    let before = snapshot(setup.root.path());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", "networks.json is a symbolic link"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(setup.root.path()));
}

#[tokio::test]
async fn r12_a_link_in_place_of_the_temporary_file_is_not_written_through() {
    let setup = Setup::new();
    setup.save_office();
    let target = setup.root.path().join("target");
    std::fs::write(&target, b"precious").expect("write");
    symlink(&target, setup.state().join(".networks.json.tmp")).expect("symlink");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    // The list itself is fine and was loaded.
    ran.one_error(&["left as found", ".networks.json.tmp is a symbolic link", "saved=1"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
    assert_eq!(std::fs::read(&target).expect("read"), b"precious");
}

#[tokio::test]
async fn r12_another_users_state_directory_is_not_used() {
    let setup = Setup::new();
    setup.save_office();
    give_away(&setup.state());
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", &format!("is owned by uid {NOBODY}"), "saved=0"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_another_users_list_is_not_read() {
    let setup = Setup::new();
    setup.save_office();
    give_away(&setup.list());
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", "networks.json is owned by uid", "saved=0"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_state_directory_linked_by_another_user_is_not_followed() {
    let setup = Setup::new();
    setup.save_office();
    let real = setup.root.path().join("real");
    std::fs::rename(setup.state(), &real).expect("move");
    symlink(&real, setup.state()).expect("symlink");
    give_away(&setup.state());
    let before = snapshot(setup.root.path());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", &format!("is a symbolic link owned by uid {NOBODY}")]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(setup.root.path()));
}

#[tokio::test]
async fn r12_a_file_in_place_of_the_state_directory_is_left_alone() {
    let setup = Setup::new();
    std::fs::remove_dir(setup.state()).expect("rmdir");
    std::fs::write(setup.state(), b"not a directory").expect("write");
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", "is not a directory"]);
    ran.not_saved();
    assert_eq!(std::fs::read(setup.state()).expect("read"), b"not a directory");
}

#[tokio::test]
async fn r12_a_newer_format_is_kept_for_the_build_that_wrote_it() {
    let setup = Setup::new();
    setup.save_office();
    let text = std::fs::read_to_string(setup.list()).expect("read").replacen("\"version\": 1", "\"version\": 2", 1);
    std::fs::write(setup.list(), text).expect("write");
    let before = snapshot(&setup.state());
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["left as found", "format version 2 is not supported"]);
    ran.not_saved();
    assert_unchanged(&before, &snapshot(&setup.state()));
}

#[tokio::test]
async fn r12_a_corrupt_list_is_moved_aside_and_provisioning_works() {
    let setup = Setup::new();
    std::fs::write(setup.list(), b"{\"version\": 1, \"netw").expect("write");
    let ran = run(&setup, Run::Plain).await;
    ran.one_error(&["is corrupt; moved it aside", "networks.json.corrupt-1"]);
    ran.connected();
    let moved = std::fs::read(setup.state().join("networks.json.corrupt-1")).expect("kept");
    assert_eq!(moved, b"{\"version\": 1, \"netw");
    let saved = wifiprov_store::NetworkStore::open(setup.state()).load().expect("a valid list now");
    assert_eq!(saved.get_at(0).expect("one network").ssid().as_bytes(), b"home");
}

#[tokio::test]
async fn r12_a_state_directory_open_to_others_is_tightened_with_one_warning() {
    let setup = Setup::new();
    setup.save_office();
    std::fs::set_permissions(setup.state(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let ran = run(&setup, Run::Plain).await;
    assert!(ran.at_start("ERROR").is_empty(), "{}", ran.log);
    let warnings: Vec<_> = ran.at_start("WARN").into_iter().filter(|l| l.contains("open to other users")).collect();
    assert_eq!(warnings.len(), 1, "{}", ran.log);
    assert!(warnings.iter().all(|w| w.contains("was=777") && w.contains("now=700")), "{}", ran.log);
    ran.connected();
    let mode = std::fs::metadata(setup.state()).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let saved = wifiprov_store::NetworkStore::open(setup.state()).load().expect("loads");
    let names: Vec<_> = saved.iter().map(|n| n.ssid().to_string()).collect();
    assert_eq!(names, ["home", "office"]);
}
