//! Secrets stay secret: the PoP, the security 2 password and the Wi-Fi passphrase a client sends reach neither
//! a non-terminal stdout (under systemd, the journal) nor the log, even at trace level, unless a person asks
//! for them with `--show-credentials`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wifiprov_client::{Client, HttpClient, ProvisionOutcome};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, Sec2Patch};
use wifiprov_testkit::SeededRandom;
use wifiprov_testkit::process::{Process, Stream};

use crate::common::{SCENARIO, poll};

const POP: &str = "pop-7c1e55a0";
const PASSWORD: &str = "pw-2b8f04d9";
const SERVICE_KEY: &str = "softap-key-91d3";
const PASSPHRASE: &str = "correct-horse";

/// Starts the daemon with `config` (TOML, written with `mode`) and `flags`, logging at trace level; returns it
/// and its address once the banner is out.
fn daemon(dir: &Path, config: &str, mode: u32, flags: &[&str]) -> (Process, std::net::SocketAddr) {
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let file = dir.join("wifiprovd.toml");
    std::fs::write(&file, config).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wifiprovd"));
    command
        .arg("--config")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0", "--connect-delay-ms", "10"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--scenario")
        .arg(&scenario)
        .args(flags)
        .env("RUST_LOG", "trace");
    let daemon = Process::spawn("wifiprovd", command);
    let line = daemon.wait_for_line(Stream::Stdout, Duration::from_secs(20), |l| l.starts_with("listening on "));
    let addr = line.and_then(|l| l.strip_prefix("listening on ").and_then(|a| a.parse().ok()));
    let addr = addr.unwrap_or_else(|| panic!("no address\n{daemon}"));
    // The banner's last line.
    assert!(daemon.wait_for_line(Stream::Stdout, Duration::from_secs(5), |l| l.contains("esp_prov.py")).is_some());
    (daemon, addr)
}

async fn provision(addr: std::net::SocketAddr, security: ClientSecurity) {
    let mut client = Client::new(HttpClient::connect(addr).await.unwrap());
    client.establish(security, &mut SeededRandom::new(5)).await.unwrap();
    let outcome = client.provision(b"home", PASSPHRASE.as_bytes(), poll(), |_| {}).await.unwrap();
    assert!(matches!(outcome, ProvisionOutcome::Connected(_)), "{outcome:?}");
}

fn stop(mut daemon: Process) -> (String, String) {
    assert!(Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap().success());
    assert!(daemon.wait(Duration::from_secs(30)).is_some_and(|s| s.success()), "{daemon}");
    (daemon.output(Stream::Stdout), daemon.output(Stream::Stderr))
}

fn assert_absent(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} reached {what}:\n{text}");
        assert!(!text.contains(&hex::encode(secret)), "{secret:?} reached {what} in hex:\n{text}");
    }
}

#[tokio::test]
async fn a_whole_provisioning_at_trace_level_shows_no_secret_on_a_non_terminal() {
    for (config, security) in [
        (
            format!("security = 1\npop = \"{POP}\"\nservice_key = \"{SERVICE_KEY}\"\n"),
            ClientSecurity::sec1(ProofOfPossession::from(POP)),
        ),
        (
            format!("security = 2\nsec2_password = \"{PASSWORD}\"\nservice_key = \"{SERVICE_KEY}\"\n"),
            ClientSecurity::sec2("wifiprov", Password::from(PASSWORD), Sec2Patch::Counter),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (daemon, addr) = daemon(dir.path(), &config, 0o600, &[]);
        provision(addr, security).await;
        let (stdout, stderr) = stop(daemon);
        assert!(stdout.contains("credentials and QR code not shown"), "{stdout}");
        assert!(stderr.contains("TRACE") || stderr.contains("DEBUG"), "the log ran at trace level:\n{stderr}");
        assert_absent(&stdout, &[POP, PASSWORD, SERVICE_KEY, PASSPHRASE], "stdout");
        assert_absent(&stderr, &[POP, PASSWORD, SERVICE_KEY, PASSPHRASE], "the log");
        assert!(!stderr.contains("readable by group or others"), "a 0600 file draws no warning:\n{stderr}");
    }
}

#[tokio::test]
async fn credentials_are_shown_when_asked_and_a_readable_config_file_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("security = 1\npop = \"{POP}\"\n");
    let (daemon, _) = daemon(dir.path(), &config, 0o644, &["--show-credentials"]);
    let (stdout, stderr) = stop(daemon);
    assert!(stdout.contains(&format!("--pop {POP}")), "{stdout}");
    assert!(stdout.contains(&format!(r#""pop":"{POP}""#)), "the QR payload carries the PoP:\n{stdout}");
    assert!(stderr.contains("readable by group or others; chmod 600 it"), "{stderr}");
    assert_absent(&stderr, &[POP], "the log");
}

#[test]
fn debug_output_of_settings_redacts_secrets() {
    let raw: wifiprovd::config::RawConfig =
        toml::from_str(&format!("pop = \"{POP}\"\nsec2_password = \"{PASSWORD}\"\nservice_key = \"{SERVICE_KEY}\"\n"))
            .unwrap();
    let shown = format!("{raw:?}");
    assert_absent(&shown, &[POP, PASSWORD, SERVICE_KEY], "RawConfig's Debug");
    let config = wifiprovd::config::DaemonConfig::validate(raw, &mut SeededRandom::new(1)).unwrap();
    assert_absent(&format!("{:?}", config.credentials), &[POP, PASSWORD], "Credentials' Debug");
}
