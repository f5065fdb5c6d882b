//! The radio lab: real hostapd, wpa_supplicant, NetworkManager and dnsmasq on simulated radios
//! (`mac80211_hwsim`), inside a qemu guest with a kernel of its own, for tests that must meet real Wi-Fi stacks
//! (tests/lab/README.md). The host kernel has no Wi-Fi at all; the guest's has hwsim.
//!
//! Two halves, in one test binary with `harness = false` (see [`crate::harness`]):
//!
//! - **Host**: [`Boot`] boots the guest with virtme-ng (`vng`), running this same test binary as root with
//!   [`ROLE_VAR`] set to [`GUEST_ROLE`]. The guest sees the host's root file system read-only, so the binary,
//!   `target/debug/wifiprovd` and this repository's scripts are at the same paths in there. The guest's output
//!   streams to the test's output (prefixed `guest| `), a deadline bounds the run, and the verdict comes from a
//!   file the guest writes into a shared folder ([`GuestReport`]), not from vng's exit status alone.
//! - **Guest**: [`run_cases`] brings the lab up once ([`Lab::start`]) and runs the cases one after the other,
//!   each reported by name. A [`Lab`] runs programs in its three network namespaces: `world` (the access points),
//!   `device` (the device under test, with NetworkManager on a private system bus) and `phone`.
//!
//! Nothing is installed here: a missing `vng` or guest kernel fails the test with a message saying to run
//! `scripts/test`, which installs both (through `tests/lab/setup.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::harness::ROLE_VAR;
use crate::process::{Process, Stream};

/// The role a lab test binary plays inside the guest.
pub const GUEST_ROLE: &str = "lab-guest";

/// Set in the guest: the shared folder for the verdict and the logs.
pub const OUT_VAR: &str = "WIFIPROV_LAB_OUT";

/// Selects cases by name: comma-separated substrings, like a test filter (host and guest; the host passes it on).
/// Unset or empty runs every case.
pub const CASES_VAR: &str = "WIFIPROV_LAB_CASES";

/// NetworkManager's log level in the lab (default `INFO`; `DEBUG` and `TRACE` are slow under emulation).
pub const NM_LOG_LEVEL_VAR: &str = "WIFIPROV_LAB_NM_LOG_LEVEL";

/// The home network: WPA2-PSK.
pub const HOME_NET: &str = "HomeNet";
/// WPA3-Personal only (SAE, management frame protection required).
pub const WPA3_NET: &str = "Wpa3Net";
/// An open network.
pub const OPEN_NET: &str = "OpenNet";
/// A hidden WPA2-PSK network (no SSID in its beacons).
pub const HIDDEN_NET: &str = "HiddenNet";
/// A second WPA2-PSK network, for tests of which saved network a device falls back to.
pub const BACKUP_NET: &str = "BackupNet";
/// A WPA2-PSK network on channel 1, where the others are on [`Lab::channel`].
pub const FAR_NET: &str = "FarNet";

/// Host variables the guest gets too, when set.
const PASSED_ON: [&str; 5] = [CASES_VAR, NM_LOG_LEVEL_VAR, "RUST_BACKTRACE", "RUST_LOG", "RUST_LIB_BACKTRACE"];

/// The first line the guest prints; the host times the boot by it.
const GUEST_UP: &str = "lab guest: up";

/// The guest's verdict file in the shared folder: one `ok NAME SECONDS` or `FAILED NAME SECONDS` line per case,
/// then `done`.
const VERDICT: &str = "verdict";

/// How long bring-up may take. Measured: about 20 s on 2 cores under software emulation.
const BRING_UP: Duration = Duration::from_secs(180);

/// How long switching an access point, a teardown or a short command may take.
const SCRIPT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------------
// Host side

/// Boots the lab's guest running this test binary in [`GUEST_ROLE`], and reports what the guest said.
///
/// `vng --run /boot/vmlinuz-VERSION --user root --disable-kvm --memory 1G --cpus 2 --rwdir OUT --exec …`: software
/// emulation, because a KVM guest hangs on this kind of machine (nested virtualisation). OUT is
/// `target/<profile>/lab/<binary>/`, emptied first; it holds the guest's launcher, its console output
/// (`console.log`), the verdict and every daemon's log (`logs/`), and stays for inspection.
#[derive(Debug, Clone)]
pub struct Boot {
    role: String,
    timeout: Duration,
    memory: String,
    cpus: u32,
    env: Vec<(String, String)>,
    out_dir: Option<PathBuf>,
}

impl Boot {
    /// A boot of the guest in `role` (normally [`GUEST_ROLE`]), with a 10-minute deadline.
    pub fn new(role: &str) -> Self {
        Self {
            role: role.to_owned(),
            timeout: Duration::from_secs(600),
            memory: "1G".to_owned(),
            cpus: 2,
            env: Vec::new(),
            out_dir: None,
        }
    }

    /// The deadline for the whole run, boot to power-off. The guest is killed when it passes.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets an environment variable for the guest's test binary (the guest starts with a bare environment).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The shared folder (default `target/<profile>/lab/<binary name>/`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Boots the guest, streams its output, and waits for it to power off or for the deadline. Panics (failing
    /// the test) when vng or the kernel is missing or the guest cannot be started; a guest that fails or hangs is
    /// reported, not a panic: see [`GuestReport::assert_passed`].
    pub fn run(self) -> GuestReport {
        let vng = vng_program();
        let kernel = guest_kernel();
        let exe = std::env::current_exe().expect("cannot find the test binary");
        let out = self.out_dir.clone().unwrap_or_else(|| default_out_dir(&exe));
        if out.exists() {
            fs::remove_dir_all(&out).unwrap_or_else(|e| panic!("cannot empty {}: {e}", out.display()));
        }
        fs::create_dir_all(out.join("logs")).unwrap_or_else(|e| panic!("cannot make {}: {e}", out.display()));
        let out = out.canonicalize().expect("cannot resolve the lab's folder");
        let launcher = out.join("guest.sh");
        fs::write(&launcher, self.launcher(&exe, &out)).expect("cannot write the guest's launcher");

        // vng runs `virtme-run` from PATH, so the venv's bin directory goes first.
        let venv_bin = vng.parent().expect("vng is in a directory").to_owned();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut path_dirs = vec![venv_bin];
        path_dirs.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(path_dirs).expect("PATH entries cannot hold ':'");

        let (reader, writer) = std::io::pipe().expect("cannot make a pipe");
        let mut command = Command::new(&vng);
        command
            .arg("--run")
            .arg(&kernel)
            .args(["--user", "root", "--disable-kvm", "--memory", &self.memory, "--cpus", &self.cpus.to_string()])
            .arg("--rwdir")
            .arg(&out)
            .arg("--exec")
            .arg(format!("sh {}", shell_quote(&launcher.to_string_lossy())))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("cannot clone a pipe"))
            .stderr(writer)
            // Its own process group: vng runs virtme-run through a shell, which runs qemu; a deadline must stop
            // them all, and killing vng alone would leave qemu running and holding the output pipe. (So a Ctrl-C
            // at the terminal does not reach the guest either; it ends by itself, every wait in it is bounded.)
            .process_group(0);
        let started = Instant::now();
        eprintln!("lab: booting {} with {} (shared folder {})", kernel.display(), vng.display(), out.display());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", vng.display()));
        // The writer ends were moved into `command`; drop it so that end of file means every holder exited.
        drop(command);
        let mut group = GroupKiller(Some(child.id()));

        let (lines_tx, lines) = mpsc::channel::<String>();
        let pump = std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
                line.clear();
                if lines_tx.send(text).is_err() {
                    break;
                }
            }
        });

        let mut console = fs::File::create(out.join("console.log")).expect("cannot write console.log");
        let mut boot = None;
        let mut timed_out = false;
        let deadline = started + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if boot.is_none() && line.contains(GUEST_UP) {
                        boot = Some(started.elapsed());
                    }
                    println!("guest| {line}");
                    let _ = writeln!(console, "{line}");
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    eprintln!("lab: the guest passed its {}s deadline; killing it", self.timeout.as_secs());
                    group.kill();
                    break;
                }
            }
        }
        let status = child.wait().unwrap_or_else(|e| panic!("cannot wait for vng: {e}"));
        group.0 = None;
        // After a kill the pipe ends once the group is gone; the rest of the output is still worth keeping.
        for line in lines.iter() {
            println!("guest| {line}");
            let _ = writeln!(console, "{line}");
        }
        let _ = pump.join();
        let total = started.elapsed();

        let verdict = fs::read_to_string(out.join(VERDICT)).unwrap_or_default();
        let mut cases = Vec::new();
        let mut finished = false;
        for line in verdict.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("done"), None, None) => finished = true,
                (Some(outcome @ ("ok" | "FAILED")), Some(name), Some(seconds)) => cases.push(CaseOutcome {
                    name: name.to_owned(),
                    passed: outcome == "ok",
                    seconds: seconds.parse().unwrap_or(f64::NAN),
                }),
                _ => {}
            }
        }
        let report = GuestReport { cases, finished, timed_out, status, boot, total, out_dir: out };
        eprintln!("{report}");
        report
    }

    /// The script the guest runs: its environment, then the test binary in the test's working directory.
    fn launcher(&self, exe: &Path, out: &Path) -> String {
        let mut script =
            String::from("#!/bin/sh\n# Written by wifiprov_testkit::lab::Boot for one run of the guest.\n");
        let mut env: Vec<(String, String)> = vec![
            ("PATH".to_owned(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()),
            (ROLE_VAR.to_owned(), self.role.clone()),
            (OUT_VAR.to_owned(), out.to_string_lossy().into_owned()),
        ];
        for key in PASSED_ON {
            if let Ok(value) = std::env::var(key) {
                env.push((key.to_owned(), value));
            }
        }
        env.extend(self.env.iter().cloned());
        for (key, value) in &env {
            let _ = writeln!(script, "export {key}={}", shell_quote(value));
        }
        if let Ok(dir) = std::env::current_dir() {
            let _ = writeln!(script, "cd {} || exit 1", shell_quote(&dir.to_string_lossy()));
        }
        let _ = writeln!(script, "exec {}", shell_quote(&exe.to_string_lossy()));
        script
    }
}

/// Kills a process group (vng, virtme-run, qemu) when told to or when dropped armed, so that a host test that
/// panics halfway leaves no guest running.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            // `kill` takes a negative id as a process group.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One case's outcome as the guest reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// How long it took.
    pub seconds: f64,
}

/// What a guest run came to.
#[derive(Debug)]
pub struct GuestReport {
    /// Every case the guest finished, in order (`bring-up` stands for a failed [`Lab::start`]).
    pub cases: Vec<CaseOutcome>,
    /// Whether the guest got to the end of its cases (wrote `done`).
    pub finished: bool,
    /// Whether the host killed it at the deadline.
    pub timed_out: bool,
    /// vng's exit status (the guest program's, when the guest got that far).
    pub status: ExitStatus,
    /// From starting vng to the guest's first line, when it came.
    pub boot: Option<Duration>,
    /// From starting vng to its exit.
    pub total: Duration,
    /// The shared folder: `console.log`, `verdict`, `logs/`.
    pub out_dir: PathBuf,
}

impl GuestReport {
    /// Whether every case passed and the guest finished cleanly.
    pub fn passed(&self) -> bool {
        self.finished && !self.timed_out && self.status.success() && self.cases.iter().all(|c| c.passed)
    }

    /// Panics (failing the test) unless [`GuestReport::passed`], naming what failed and where the logs are.
    pub fn assert_passed(&self) {
        if self.passed() {
            return;
        }
        let failed: Vec<&str> = self.cases.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
        let mut why = String::new();
        if !failed.is_empty() {
            let _ = write!(why, "failed: {}; ", failed.join(", "));
        }
        if self.timed_out {
            why.push_str("the guest was killed at the deadline; ");
        } else if !self.finished {
            why.push_str("the guest stopped before it reported all cases (crash or panic outside a case); ");
        }
        if !self.status.success() {
            let _ = write!(why, "vng exited with {}; ", self.status);
        }
        panic!(
            "the radio lab failed: {why}the guest's output is above and in {}, every daemon's log in {}",
            self.out_dir.join("console.log").display(),
            self.out_dir.join("logs").display()
        );
    }
}

impl fmt::Display for GuestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lab: guest run {:.1}s", self.total.as_secs_f64())?;
        match self.boot {
            Some(boot) => writeln!(f, "lab:   boot to the guest's first line {:.1}s", boot.as_secs_f64())?,
            None => writeln!(f, "lab:   the guest never started its test binary")?,
        }
        for case in &self.cases {
            let outcome = if case.passed { "ok" } else { "FAILED" };
            writeln!(f, "lab:   case {} ... {outcome} ({:.1}s)", case.name, case.seconds)?;
        }
        if !self.finished {
            writeln!(f, "lab:   (the guest did not finish{})", if self.timed_out { ": deadline" } else { "" })?;
        }
        write!(f, "lab:   logs in {}", self.out_dir.join("logs").display())
    }
}

/// The repository root, from this crate's manifest directory.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `vng` that `tests/lab/setup.sh` installs.
fn vng_program() -> PathBuf {
    let root = repo_root();
    let venv = match std::env::var_os("WIFIPROV_LAB_VENV") {
        Some(dir) => root.join(dir),
        None => root.join("target/lab-venv"),
    };
    let program = venv.join("bin/vng");
    if !program.is_file() {
        panic!(
            "virtme-ng is not installed at {}: the radio lab boots its guest with it. Run scripts/test (it installs \
             everything the tests need), or tests/lab/setup.sh for just the lab",
            program.display()
        );
    }
    program
}

/// The newest `/boot/vmlinuz-*` whose modules include `mac80211_hwsim`.
fn guest_kernel() -> PathBuf {
    let mut versions: Vec<String> = fs::read_dir("/boot")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("vmlinuz-").map(str::to_owned))
                .filter(|version| has_hwsim(version))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by(|a, b| version_cmp(a, b));
    match versions.pop() {
        Some(version) => PathBuf::from(format!("/boot/vmlinuz-{version}")),
        None => panic!(
            "no guest kernel: the radio lab needs a /boot/vmlinuz-* with mac80211_hwsim among its modules (Debian \
             linux-image-amd64). Run scripts/test (as root it installs everything the tests need), or \
             tests/lab/setup.sh for just the lab"
        ),
    }
}

/// Whether kernel `version` ships the hwsim module (its place moved to `virtual/` in 6.7; it may be compressed).
fn has_hwsim(version: &str) -> bool {
    let base = format!("/lib/modules/{version}/kernel/drivers/net/wireless");
    ["", "virtual/"].iter().any(|sub| {
        ["", ".xz", ".zst", ".gz"].iter().any(|ext| Path::new(&format!("{base}/{sub}mac80211_hwsim.ko{ext}")).exists())
    })
}

/// Orders version strings with their digit runs compared as numbers (`6.10.0` after `6.9.2`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 {
                out.push((rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
                rest = &rest[digits..];
            } else {
                let text = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
                out.push((0, rest[..text].to_owned()));
                rest = &rest[text..];
            }
        }
        out
    }
    chunks(a).cmp(&chunks(b))
}

/// `target/<profile>/lab/<binary name without its hash>`, next to the binary's `deps/`.
fn default_out_dir(exe: &Path) -> PathBuf {
    let stem = exe.file_stem().and_then(OsStr::to_str).unwrap_or("lab");
    let name = stem.rsplit_once('-').map_or(stem, |(name, _hash)| name);
    let profile_dir = exe.parent().and_then(Path::parent).unwrap_or_else(|| Path::new("."));
    profile_dir.join("lab").join(name)
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

// ---------------------------------------------------------------------------------------------------------------
// Guest side: the case runner

/// One lab case: a name and a function that fails by panicking.
pub type Case = (&'static str, fn(&Lab));

/// The guest's `main`: brings the lab up once, runs the selected `cases` ([`CASES_VAR`]) one after the other with
/// [`Lab::reset`] between them, prints each outcome as it comes (`lab case NAME ... ok (12.3s)`; on a failure
/// the tail of every daemon's log), writes the verdict for the host, and tears the lab down.
pub fn run_cases(cases: &[Case]) -> ExitCode {
    let uptime = fs::read_to_string("/proc/uptime").ok().and_then(|t| t.split_whitespace().next().map(str::to_owned));
    println!("{GUEST_UP} (kernel uptime {}s)", uptime.as_deref().unwrap_or("?"));
    let out = std::env::var_os(OUT_VAR).map(PathBuf::from);
    let mut verdict = out.as_ref().and_then(|dir| fs::File::create(dir.join(VERDICT)).ok());
    let mut record = |line: &str| {
        if let Some(file) = verdict.as_mut() {
            // Line by line, so a guest killed halfway still tells which cases passed.
            let _ = writeln!(file, "{line}");
            let _ = file.sync_all();
        }
    };

    let filter = std::env::var(CASES_VAR).unwrap_or_default();
    let wanted: Vec<&str> = filter.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    let chosen: Vec<&Case> =
        cases.iter().filter(|(name, _)| wanted.is_empty() || wanted.iter().any(|w| name.contains(w))).collect();
    println!("lab: {} of {} cases selected", chosen.len(), cases.len());

    let began = Instant::now();
    let lab = match catch_unwind(Lab::start) {
        Ok(lab) => lab,
        Err(_) => {
            println!("lab case bring-up ... FAILED ({:.1}s)", began.elapsed().as_secs_f64());
            record(&format!("FAILED bring-up {:.1}", began.elapsed().as_secs_f64()));
            record("done");
            return ExitCode::FAILURE;
        }
    };
    println!("lab: up in {:.1}s (bring-up)", lab.bring_up_time().as_secs_f64());

    let mut failed = 0;
    for (i, (name, case)) in chosen.iter().enumerate() {
        if i > 0 {
            // A reset that fails is the next case's failure: it starts from a state nobody meant.
            if catch_unwind(AssertUnwindSafe(|| lab.reset())).is_err() {
                println!("lab: reset before {name} failed");
            }
        }
        println!("lab case {name} ...");
        let began = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&lab)));
        let took = began.elapsed().as_secs_f64();
        if outcome.is_ok() {
            println!("lab case {name} ... ok ({took:.1}s)");
            record(&format!("ok {name} {took:.1}"));
        } else {
            failed += 1;
            eprintln!("{}", lab.logs());
            println!("lab case {name} ... FAILED ({took:.1}s)");
            record(&format!("FAILED {name} {took:.1}"));
        }
    }
    drop(lab);
    record("done");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

// ---------------------------------------------------------------------------------------------------------------
// Guest side: the lab

/// How an access point is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// No encryption.
    Open,
    /// WPA2-Personal (PSK, CCMP).
    Wpa2Psk,
    /// WPA3-Personal only (SAE, management frame protection required).
    Wpa3Sae,
}

/// Whether an access point names itself in its beacons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// It does.
    Broadcast,
    /// It does not (`ignore_broadcast_ssid=1`): a station must probe for it by name.
    Hidden,
}

/// One access point of the lab's world: a hostapd on a radio of its own, with a dnsmasq for its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPoint {
    /// The SSID, also the name [`Lab::ap_down`] and [`Lab::ap_up`] take.
    pub ssid: String,
    /// How it is secured.
    pub security: Security,
    /// The passphrase (WPA2) or password (WPA3); `None` for an open network.
    pub passphrase: Option<String>,
    /// Whether it names itself in its beacons.
    pub visibility: Visibility,
    /// Its interface in namespace `world`.
    pub iface: String,
    /// Its radio.
    pub phy: String,
    /// Its BSSID (the radio's address).
    pub bssid: String,
    /// Its channel.
    pub channel: u32,
    /// Its subnet, `10.77.N.0/24`; stations get `.10` to `.99`.
    pub subnet: String,
    /// The access point's own address in the subnet, offered as the router.
    pub gateway: Ipv4Addr,
}

/// How [`Lab::start_with`] sets the lab up.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The device's interfaces that NetworkManager manages; every other stays unmanaged. Default: the station
    /// `wlan0`, and `uap0`, the provisioning access point's interface beside it (made by the SoftAP cases).
    pub nm_managed: Vec<String>,
    /// NetworkManager's log level; default [`NM_LOG_LEVEL_VAR`], else `INFO`.
    pub nm_log_level: String,
}

impl Default for LabConfig {
    fn default() -> Self {
        Self {
            nm_managed: vec!["wlan0".to_owned(), "uap0".to_owned()],
            nm_log_level: std::env::var(NM_LOG_LEVEL_VAR).unwrap_or_else(|_| "INFO".to_owned()),
        }
    }
}

/// The lab, up, inside the guest. Dropping it tears everything down (daemons, namespaces, the hwsim module), so
/// a new one can start in the same guest.
pub struct Lab {
    scripts: PathBuf,
    state: PathBuf,
    logs: PathBuf,
    facts: BTreeMap<String, String>,
    aps: Vec<AccessPoint>,
    /// Access points switched off through [`Lab::ap_down`] and not on again.
    down: Mutex<BTreeSet<String>>,
    bring_up: Duration,
}

impl Lab {
    /// Brings the lab up with [`LabConfig::default`].
    pub fn start() -> Self {
        Self::start_with(&LabConfig::default())
    }

    /// Brings the lab up (`tests/lab/guest/bring-up.sh`): radios, namespaces, access points, the device's bus and
    /// NetworkManager, ready when NetworkManager reports the station `disconnected`. Logs go to the shared
    /// folder's `logs/` when [`OUT_VAR`] is set (the host reads them), else to `/run/wifiprov-lab/logs`. Panics
    /// (failing the test) with the script's output and the daemons' logs when something does not come up; only
    /// for root inside the lab's guest.
    pub fn start_with(config: &LabConfig) -> Self {
        let scripts = repo_root().join("tests/lab/guest");
        let state = PathBuf::from("/run/wifiprov-lab");
        let logs = match std::env::var_os(OUT_VAR) {
            Some(out) => PathBuf::from(out).join("logs"),
            None => state.join("logs"),
        };
        let began = Instant::now();
        let mut command = Command::new("bash");
        command
            .arg(scripts.join("bring-up.sh"))
            .env("LAB_STATE", &state)
            .env("LAB_LOGS", &logs)
            .env("LAB_NM_MANAGED", config.nm_managed.join(" "))
            .env("LAB_NM_LOG_LEVEL", &config.nm_log_level);
        let mut script = Process::spawn("bring-up.sh", command);
        // Each progress line as it comes, so a slow bring-up shows where it is.
        let mut shown = 0;
        let status = loop {
            let status = script.wait(Duration::from_millis(500));
            let lines: Vec<String> = script.output(Stream::Stderr).lines().map(str::to_owned).collect();
            for line in lines.iter().skip(shown) {
                eprintln!("{line}");
            }
            shown = lines.len();
            if status.is_some() || began.elapsed() > BRING_UP {
                break status;
            }
        };
        let _ = fs::write(logs.join("bring-up.log"), script.output(Stream::Stderr));
        let mut lab = Self {
            scripts,
            state,
            logs,
            facts: BTreeMap::new(),
            aps: Vec::new(),
            down: Mutex::new(BTreeSet::new()),
            bring_up: began.elapsed(),
        };
        match status {
            Some(status) if status.success() => {}
            Some(status) => panic!("lab bring-up failed ({status})\n{script}\n{}", lab.logs()),
            None => panic!("lab bring-up took longer than {}s\n{script}\n{}", BRING_UP.as_secs(), lab.logs()),
        }
        let env_file = lab.state.join("lab.env");
        let text = fs::read_to_string(&env_file)
            .unwrap_or_else(|e| panic!("bring-up wrote no {}: {e}\n{}", env_file.display(), lab.logs()));
        lab.facts = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        lab.aps = lab.fact("APS").split(',').map(|name| lab.parse_ap(name)).collect();
        lab
    }

    fn parse_ap(&self, name: &str) -> AccessPoint {
        let get = |field: &str| self.fact(&format!("AP_{name}_{field}")).to_owned();
        let security = match get("SECURITY").as_str() {
            "open" => Security::Open,
            "wpa2" => Security::Wpa2Psk,
            "wpa3" => Security::Wpa3Sae,
            other => panic!("lab.env: unknown security {other:?} for {name}"),
        };
        let passphrase = Some(get("PASSPHRASE")).filter(|p| !p.is_empty());
        let visibility = if get("HIDDEN") == "yes" { Visibility::Hidden } else { Visibility::Broadcast };
        let gateway = get("GATEWAY").parse().unwrap_or_else(|e| panic!("lab.env: gateway of {name}: {e}"));
        AccessPoint {
            ssid: name.to_owned(),
            security,
            passphrase,
            visibility,
            iface: get("IFACE"),
            phy: get("PHY"),
            bssid: get("BSSID"),
            channel: get("CHANNEL").parse().unwrap_or_else(|e| panic!("lab.env: channel of {name}: {e}")),
            subnet: get("SUBNET"),
            gateway,
        }
    }

    /// A fact from bring-up's `lab.env` (`DEVICE_IFACE`, `AP_HomeNet_BSSID`, …). Panics for an unknown key.
    pub fn fact(&self, key: &str) -> &str {
        self.facts.get(key).unwrap_or_else(|| panic!("lab.env has no {key}"))
    }

    /// How long bring-up took.
    pub fn bring_up_time(&self) -> Duration {
        self.bring_up
    }

    /// The access points, in bring-up order.
    pub fn aps(&self) -> &[AccessPoint] {
        &self.aps
    }

    /// The access point named `ssid` ([`HOME_NET`], …). Panics for an unknown one.
    pub fn ap(&self, ssid: &str) -> &AccessPoint {
        self.aps.iter().find(|ap| ap.ssid == ssid).unwrap_or_else(|| panic!("the lab has no access point {ssid}"))
    }

    /// The channel of every access point but [`FAR_NET`].
    pub fn channel(&self) -> u32 {
        self.fact("CHANNEL").parse().expect("lab.env: CHANNEL is a number")
    }

    /// The device's station interface (`wlan0`, in namespace `device`).
    pub fn device_iface(&self) -> &str {
        self.fact("DEVICE_IFACE")
    }

    /// The device's radio (`phyN`); a second interface for an access point goes on it
    /// (`iw phy PHY interface add uap0 type __ap`, or `iw dev wlan0 interface add …`).
    pub fn device_phy(&self) -> &str {
        self.fact("DEVICE_PHY")
    }

    /// The device's station address.
    pub fn device_mac(&self) -> &str {
        self.fact("DEVICE_MAC")
    }

    /// The address of the device's system bus (`unix:path=…`), where NetworkManager is.
    pub fn device_bus(&self) -> &str {
        self.fact("DEVICE_BUS")
    }

    /// The directory of NetworkManager's keyfile profiles.
    pub fn nm_connections_dir(&self) -> PathBuf {
        PathBuf::from(self.fact("NM_CONNECTIONS"))
    }

    /// The phone's interface (`wlan0`, in namespace `phone`): up, and nothing runs on it.
    pub fn phone_iface(&self) -> &str {
        self.fact("PHONE_IFACE")
    }

    /// The phone's radio.
    pub fn phone_phy(&self) -> &str {
        self.fact("PHONE_PHY")
    }

    /// The DHCP leases that access point `ssid`'s dnsmasq handed out, as its lease file has them (one line per
    /// lease: expiry, MAC address, IPv4 address, host name, client id).
    pub fn dhcp_leases(&self, ssid: &str) -> String {
        let file = self.state.join("run").join(format!("dnsmasq-{}.leases", self.ap(ssid).iface));
        // dnsmasq creates the file at start; a missing one is a broken lab, not an empty lease list.
        fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}\n{}", file.display(), self.logs()))
    }

    /// Where every daemon logs.
    pub fn log_dir(&self) -> &Path {
        &self.logs
    }

    /// A command for `program` in the device's namespace, on the device's system bus
    /// (`DBUS_SYSTEM_BUS_ADDRESS`) and no other bus.
    pub fn device(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = in_namespace("device", program);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", self.device_bus());
        command
    }

    /// A command for `program` in the phone's namespace.
    pub fn phone(&self, program: impl AsRef<OsStr>) -> Command {
        in_namespace("phone", program)
    }

    /// A command for `program` in the world's namespace (the access points' side).
    pub fn world(&self, program: impl AsRef<OsStr>) -> Command {
        in_namespace("world", program)
    }

    /// `nmcli ARGS` on the device, checked: returns its standard output, panics with everything it printed and
    /// the daemons' logs when it fails or takes more than `timeout`.
    pub fn nmcli(&self, args: &[&str], timeout: Duration) -> String {
        let mut command = self.device("nmcli");
        command.args(args);
        self.run_ok(&format!("nmcli {}", args.join(" ")), command, timeout)
    }

    /// Runs `command` to its end, at most `timeout`, and returns how it ended and what it printed. Panics only
    /// when it cannot start or does not end in time (with its output and the daemons' logs).
    pub fn run(&self, name: &str, command: Command, timeout: Duration) -> Finished {
        let mut process = Process::spawn(name, command);
        process.close_stdin();
        let Some(status) = process.wait(timeout) else {
            process.kill();
            panic!("{name} did not finish within {}s\n{process}\n{}", timeout.as_secs(), self.logs());
        };
        Finished { status, stdout: process.output(Stream::Stdout), stderr: process.output(Stream::Stderr) }
    }

    /// Like [`Lab::run`], and panics unless `command` succeeds; returns its standard output.
    pub fn run_ok(&self, name: &str, command: Command, timeout: Duration) -> String {
        let finished = self.run(name, command, timeout);
        if !finished.status.success() {
            panic!("{name} failed ({})\n{finished}\n{}", finished.status, self.logs());
        }
        finished.stdout
    }

    /// Switches access point `ssid` off: its hostapd stops, the network vanishes from the air and stations on
    /// it lose it. Its dnsmasq keeps running.
    pub fn ap_down(&self, ssid: &str) {
        self.ap(ssid);
        self.script("ap.sh", &["down", ssid]);
        self.down.lock().unwrap_or_else(PoisonError::into_inner).insert(ssid.to_owned());
    }

    /// Switches access point `ssid` on again and waits until it beacons (a no-op when it is on).
    pub fn ap_up(&self, ssid: &str) {
        self.ap(ssid);
        self.script("ap.sh", &["up", ssid]);
        self.down.lock().unwrap_or_else(PoisonError::into_inner).remove(ssid);
    }

    /// Brings the lab back to how bring-up left it, as far as cases share it: every access point on, no
    /// NetworkManager profile, the station disconnected. [`run_cases`] calls it between cases. Processes a
    /// case started are its own to stop (dropping their [`Process`] does).
    pub fn reset(&self) {
        let down: Vec<String> = self.down.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
        for ssid in down {
            self.ap_up(&ssid);
        }
        let uuids = self.nmcli(&["-t", "-f", "UUID", "connection", "show"], SCRIPT);
        let uuids: Vec<&str> = uuids.lines().map(str::trim).filter(|u| !u.is_empty()).collect();
        if !uuids.is_empty() {
            let mut args = vec!["connection", "delete"];
            args.extend(uuids);
            self.nmcli(&args, SCRIPT);
        }
        // Deleting the active profile disconnects; wait until NetworkManager says so.
        self.wait_for_device_state("disconnected", SCRIPT);
    }

    /// Waits until NetworkManager reports the station in `state` (`disconnected`, `connected`, … as
    /// `nmcli device` names them). Panics with the daemons' logs after `timeout`.
    pub fn wait_for_device_state(&self, state: &str, timeout: Duration) {
        let iface = self.device_iface();
        let wanted = format!("{iface}:{state}");
        // `nmcli device monitor` prints each state change ("wlan0: disconnected"). It only wakes the loop, which
        // asks for the state itself: a change before the monitor listened, or a line printed for an earlier
        // visit to the state, cannot make it wrong, at worst check once more.
        let mut monitor = self.device("nmcli");
        monitor.args(["device", "monitor", iface]);
        let monitor = Process::spawn("nmcli device monitor", monitor);
        let printed = format!("{iface}: {state}");
        let began = Instant::now();
        loop {
            let states = self.nmcli(&["-t", "-f", "DEVICE,STATE", "device"], SCRIPT);
            if states.lines().any(|l| l == wanted) {
                return;
            }
            if began.elapsed() > timeout {
                panic!("{iface} did not become {state} within {}s:\n{states}\n{}", timeout.as_secs(), self.logs());
            }
            let _ = monitor.wait_for_line(Stream::Stdout, Duration::from_secs(2), |l| l.starts_with(&printed));
        }
    }

    /// The device station's IPv4 address, if it has one.
    pub fn device_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4(self.device("ip"), self.device_iface())
    }

    /// The phone's IPv4 address, if it has one.
    pub fn phone_ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4(self.phone("ip"), self.phone_iface())
    }

    /// The IPv4 address of `iface`, by `ip` (a command already in the right namespace).
    fn ipv4(&self, mut ip: Command, iface: &str) -> Option<Ipv4Addr> {
        ip.args(["-4", "-o", "addr", "show", "dev", iface]);
        ipv4_in(&self.run_ok("ip addr", ip, SCRIPT))
    }

    /// The tail of every daemon's log, for failure messages; the full logs are in [`Lab::log_dir`].
    pub fn logs(&self) -> String {
        const TAIL: usize = 60;
        let mut files: Vec<PathBuf> = fs::read_dir(&self.logs)
            .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        files.sort();
        let mut text = format!("=== lab logs (last {TAIL} lines of each; all of them in {})\n", self.logs.display());
        for file in files {
            let content = fs::read_to_string(&file).unwrap_or_else(|e| format!("(unreadable: {e})\n"));
            let lines: Vec<&str> = content.lines().collect();
            let name = file.file_name().and_then(OsStr::to_str).unwrap_or("?");
            let _ = writeln!(text, "--- {name} ({} lines)", lines.len());
            for line in &lines[lines.len().saturating_sub(TAIL)..] {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }

    fn script(&self, script: &str, args: &[&str]) {
        let mut command = Command::new("bash");
        command.arg(self.scripts.join(script)).args(args).env("LAB_STATE", &self.state).env("LAB_LOGS", &self.logs);
        self.run_ok(&format!("{script} {}", args.join(" ")), command, SCRIPT);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut command = Command::new("bash");
        command.arg(self.scripts.join("teardown.sh")).env("LAB_STATE", &self.state).env("LAB_LOGS", &self.logs);
        let mut teardown = Process::spawn("teardown.sh", command);
        let status = teardown.wait(SCRIPT);
        let _ = fs::write(self.logs.join("teardown.log"), teardown.output(Stream::Stderr));
        if status.is_none_or(|s| !s.success()) {
            // Not a panic: Drop may run while a failed case unwinds.
            eprintln!("lab: teardown did not finish cleanly\n{teardown}");
        }
    }
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab").field("state", &self.state).field("logs", &self.logs).field("aps", &self.aps).finish()
    }
}

/// How a command run by [`Lab::run`] ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--- stdout:\n{}--- stderr:\n{}", self.stdout, self.stderr)
    }
}

/// `ip netns exec NS program`, with no D-Bus address of the guest's own. `ip netns exec` also gives the program
/// a /sys that shows the namespace's interfaces.
fn in_namespace(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .arg(program)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .env_remove("DBUS_STARTER_ADDRESS");
    command
}

/// A phone in the lab: wpa_supplicant on the phone's radio, in its namespace, for one network; killed when
/// dropped.
pub struct Phone {
    supplicant: Process,
    dir: tempfile::TempDir,
}

impl Phone {
    /// Starts the phone's supplicant for `ssid` (WPA2 with `passphrase`, open without); it scans until it finds
    /// the network and joins. Panics when it cannot start.
    pub fn start(lab: &Lab, ssid: &str, passphrase: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make the phone's directory: {e}"));
        let key = match passphrase {
            Some(passphrase) => format!("psk=\"{passphrase}\""),
            None => "key_mgmt=NONE".to_owned(),
        };
        let conf = dir.path().join("wpa.conf");
        let text = format!("ctrl_interface={}\nnetwork={{\n ssid=\"{ssid}\"\n {key}\n}}\n", dir.path().display());
        fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let mut command = lab.phone("wpa_supplicant");
        // -t: timestamps, to line its messages up with the device's logs.
        command.args(["-t", "-i", lab.phone_iface(), "-D", "nl80211", "-c"]).arg(&conf);
        Self { supplicant: Process::spawn("phone wpa_supplicant", command), dir }
    }

    /// Starts the supplicant and waits until it has joined (see [`Phone::wait_joined`]).
    pub fn join(lab: &Lab, ssid: &str, passphrase: Option<&str>, timeout: Duration) -> Self {
        let phone = Self::start(lab, ssid, passphrase);
        phone.wait_joined(lab, timeout);
        phone
    }

    /// Waits until the supplicant reports the network joined (`wpa_state=COMPLETED`); panics with its output and
    /// the daemons' logs after `timeout`.
    pub fn wait_joined(&self, lab: &Lab, timeout: Duration) {
        let began = Instant::now();
        loop {
            let mut status = lab.phone("wpa_cli");
            status.arg("-p").arg(self.dir.path()).args(["-i", lab.phone_iface(), "status"]);
            let shown = lab.run("wpa_cli status", status, SCRIPT);
            if shown.stdout.lines().any(|l| l == "wpa_state=COMPLETED") {
                // Usually a few seconds; a slow join shows what the phone went through (under emulation its
                // scans can miss an access point that answers probes from user space; BENCHMARKS.md).
                if began.elapsed() > Duration::from_secs(20) {
                    eprintln!("the phone took {:.1}s to join:\n{}", began.elapsed().as_secs_f64(), self.supplicant);
                }
                return;
            }
            if began.elapsed() > timeout {
                panic!("the phone joined nothing within {}s\n{}\n{}", timeout.as_secs(), self.supplicant, lab.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Asks for an address with busybox's DHCP client and returns it.
    pub fn dhcp(&self, lab: &Lab) -> Ipv4Addr {
        let script = self.dir.path().join("udhcpc.sh");
        let text = "#!/bin/sh\n[ \"$1\" = bound ] && ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\nexit 0\n";
        fs::write(&script, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", script.display()));
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        fs::set_permissions(&script, executable).unwrap_or_else(|e| panic!("cannot make the script runnable: {e}"));
        let mut udhcpc = lab.phone("busybox");
        udhcpc.args(["udhcpc", "-i", lab.phone_iface(), "-n", "-q", "-t", "10", "-s"]).arg(&script);
        lab.run_ok("udhcpc", udhcpc, SCRIPT);
        lab.phone_ipv4().unwrap_or_else(|| panic!("the phone has no address after DHCP\n{}", lab.logs()))
    }
}

/// The address in `ip -4 -o addr show` output (`… inet 10.77.1.42/24 brd …`).
fn ipv4_in(shown: &str) -> Option<Ipv4Addr> {
    let mut words = shown.split_whitespace();
    words.find(|w| *w == "inet")?;
    words.next()?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert!(version_cmp("6.10.0-1-amd64", "6.9.2-1-amd64").is_gt());
        assert!(version_cmp("6.1.0-57-amd64", "6.1.0-9-amd64").is_gt());
        assert!(version_cmp("6.1.0-57-amd64", "6.1.0-57-amd64").is_eq());
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn out_dir_drops_the_hash() {
        let dir = default_out_dir(Path::new("/w/target/debug/deps/lab-0123abcd"));
        assert_eq!(dir, Path::new("/w/target/debug/lab/lab"));
    }
}
