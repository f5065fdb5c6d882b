//! BlueZoo (a user-space mock of BlueZ's D-Bus API whose adapters see each other) on a private D-Bus daemon,
//! for BLE tests without a radio or a real system bus.
//!
//! [`Bluezoo::start`] starts `dbus-daemon` with a configuration of its own (one socket in a temporary
//! directory, everything allowed), then BlueZoo on that bus as `org.bluez` with the requested number of adapters
//! (`hci0`, `hci1`, …), and returns once the adapters exist. Programs reach it through
//! `DBUS_SYSTEM_BUS_ADDRESS`, which [`Bluezoo::command`] sets. Dropping the value kills and reaps both processes.
//!
//! Start a fresh one per test: BlueZoo refuses a second connection between the same two adapters (it re-exports
//! the GATT objects of the first and fails with `EEXIST`).
//!
//! Nothing is installed here: a missing `dbus-daemon` or BlueZoo fails the test with a message saying to run
//! `scripts/test`, which installs both (BlueZoo into `target/bluezoo-venv` through `tests/ble/setup.sh`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Process, Stream};

/// How long the bus and BlueZoo may take to come up.
const STARTUP: Duration = Duration::from_secs(30);

/// Seconds between BlueZoo's simulated scans (its default of 10 would make every discovery slow).
const SCAN_INTERVAL: &str = "1";

/// A private bus with BlueZoo on it. Dropping it stops both.
pub struct Bluezoo {
    // Declared first so they are dropped (killed) before the directory holding the bus socket goes.
    bluezoo: Process,
    bus: Process,
    address: String,
    adapters: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Bluezoo {
    /// Starts a bus and BlueZoo with `adapters` powered adapters. Panics (failing the test) with a message saying
    /// what to install when `dbus-daemon` or BlueZoo is missing, or when either does not come up.
    pub fn start(adapters: usize) -> Self {
        let bluezoo = bluezoo_program();
        let dir =
            tempfile::Builder::new().prefix("wifiprov-bluezoo-").tempdir().expect("cannot make a temporary directory");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&dir.path().join("bus"))).expect("cannot write the bus configuration");

        let mut command = Command::new("dbus-daemon");
        command.arg(format!("--config-file={}", config.display())).args([
            "--nofork",
            "--nopidfile",
            "--print-address=1",
        ]);
        scrub_bus_environment(&mut command);
        match Command::new("dbus-daemon").arg("--version").output() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "dbus-daemon not found: the BLE tests run BlueZoo on a private D-Bus daemon. Run scripts/test (as \
                 root it installs the Debian package `dbus`), or install dbus-daemon yourself"
            ),
            Err(e) => panic!("cannot run dbus-daemon: {e}"),
        }
        let bus = Process::spawn("dbus-daemon", command);
        let address = bus
            .wait_for_line(Stream::Stdout, STARTUP, |l| l.starts_with("unix:"))
            .unwrap_or_else(|| panic!("dbus-daemon did not print its address\n{bus}"));

        let names: Vec<String> = (0..adapters).map(|i| format!("hci{i}")).collect();
        let mut command = Command::new(&bluezoo);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", &address).env("PYTHONUNBUFFERED", "1");
        command.args(["--auto-enable", "--scan-interval", SCAN_INTERVAL]);
        for i in 0..adapters {
            command.args(["-a", &adapter_address(i)]);
        }
        let zoo = Process::spawn("bluezoo", command);
        // BlueZoo logs "Adding adapter[N][address]" right before it exports each adapter; the objects exist by the
        // time any later D-Bus message is handled.
        let last = format!("Adding adapter[{}]", adapters.saturating_sub(1));
        if zoo.wait_for_line(Stream::Stderr, STARTUP, |l| l.contains(&last)).is_none() {
            panic!("BlueZoo did not come up\n{zoo}\n{bus}");
        }
        Self { bluezoo: zoo, bus, address, adapters: names, _dir: dir }
    }

    /// The bus address (`unix:path=…`).
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// The adapter names, `hci0` first.
    pub fn adapters(&self) -> &[String] {
        &self.adapters
    }

    /// A command for `program` that finds BlueZoo as BlueZ (`DBUS_SYSTEM_BUS_ADDRESS`), and no other bus.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        scrub_bus_environment(&mut command);
        command.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address);
        command
    }

    /// BlueZoo's log so far, for failure messages.
    pub fn log(&self) -> String {
        self.bluezoo.to_string()
    }
}

impl Drop for Bluezoo {
    fn drop(&mut self) {
        // BlueZoo first, so it does not log the bus vanishing under it.
        self.bluezoo.kill();
        self.bus.kill();
    }
}

impl std::fmt::Debug for Bluezoo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bluezoo").field("address", &self.address).field("adapters", &self.adapters).finish()
    }
}

/// The address of adapter `i`: a locally administered unicast address, so it can never be a real device's.
pub fn adapter_address(i: usize) -> String {
    format!("02:00:00:00:00:{:02X}", i & 0xff)
}

/// The BlueZoo executable that `tests/ble/setup.sh` installs.
fn bluezoo_program() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = match std::env::var_os("WIFIPROV_BLUEZOO_VENV") {
        Some(dir) => root.join(dir),
        None => root.join("target/bluezoo-venv"),
    };
    let program = venv.join("bin/bluezoo");
    if !program.is_file() {
        panic!(
            "BlueZoo is not installed at {}: the BLE tests need it. Run scripts/test (it installs everything the \
             tests need), or tests/ble/setup.sh for just BlueZoo",
            program.display()
        );
    }
    program
}

/// A bus that lets any local client own any name and call anything: it exists for one test only.
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// Keeps a test's programs off any bus of the machine (the real system bus above all).
fn scrub_bus_environment(command: &mut Command) {
    command
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
        .env_remove("DBUS_STARTER_ADDRESS");
}
