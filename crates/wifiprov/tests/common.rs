//! A daemon in the test process, and the `wifiprov` binary run against it as a subprocess.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use wifiprov_backend_sim::SimRadio;
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{HandlerError, SessionId, SessionLimits};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier};
use wifiprov_store::NetworkStore;
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::HttpConfig;
use wifiprovd::frontend::{Frontend, HttpFrontend};
use wifiprovd::service::{ProvisioningService, ServiceConfig};

/// Fast radio: every duration is a few milliseconds of real time.
pub(crate) const SCENARIO: &str = wifiprov_testkit::FAST_SCENARIO;

pub(crate) const USER: &str = "wifiprov";
pub(crate) const PASSWORD: &str = "sec2-pw-Zq81";
pub(crate) const POP: &str = "pop-Kx93";
pub(crate) const PASSPHRASE: &str = "correct-horse";

/// Every secret the tests use; none may ever show up in the CLI's output.
pub(crate) const SECRETS: [&str; 6] = [PASSWORD, POP, PASSPHRASE, "office-secret", "flaky-pass", "hidden-pass"];

/// The security configurations every command is tried with: sec0, sec1, sec2 with both nonce rules.
pub(crate) fn every_scheme() -> Vec<(&'static str, DeviceSecurity)> {
    vec![
        ("sec0", danger::sec0()),
        ("sec1", sec1()),
        ("sec2-patch0", sec2(Sec2Patch::Legacy)),
        ("sec2-patch1", sec2(Sec2Patch::Counter)),
    ]
}

pub(crate) fn sec1() -> DeviceSecurity {
    DeviceSecurity::sec1(ProofOfPossession::from(POP))
}

pub(crate) fn sec2(patch: Sec2Patch) -> DeviceSecurity {
    let creds =
        generate_salt_verifier(USER.as_bytes(), &Password::from(PASSWORD), 16, &mut SeededRandom::new(9)).unwrap();
    sec2_from(&creds.salt, &creds.verifier, patch)
}

pub(crate) fn sec2_from(salt: &[u8], verifier: &[u8], patch: Sec2Patch) -> DeviceSecurity {
    DeviceSecurity::sec2(Arc::new(Sec2Verifier::new(salt, verifier).unwrap()), patch)
}

/// The credential flags that fit `security`.
pub(crate) fn creds(security: &DeviceSecurity) -> Vec<String> {
    match security.version().number() {
        0 => vec![],
        1 => vec!["--pop".into(), POP.into()],
        _ => vec!["--sec2-username".into(), USER.into(), "--sec2-password".into(), PASSWORD.into()],
    }
}

pub(crate) fn fast_manager() -> ManagerConfig {
    ManagerConfig {
        connect_delay: Duration::from_millis(10),
        cleanup_delay: Duration::from_millis(100),
        ..ManagerConfig::default()
    }
}

/// A manager that keeps serving after success, for several commands in a row.
pub(crate) fn persistent() -> ManagerConfig {
    ManagerConfig { auto_stop: AutoStop::Disabled, ..fast_manager() }
}

pub(crate) struct Daemon {
    _service: ProvisioningService,
    pub(crate) addr: SocketAddr,
    pub(crate) security: DeviceSecurity,
    _state_dir: tempfile::TempDir,
}

impl Daemon {
    pub(crate) async fn start(security: DeviceSecurity, manager: ManagerConfig) -> Self {
        Self::start_with(security, manager, false).await
    }

    /// With `custom`, the daemon also serves `custom-data`, answering `got:` and the request.
    pub(crate) async fn start_with(security: DeviceSecurity, manager: ManagerConfig, custom: bool) -> Self {
        Self::start_full(security, manager, custom, SCENARIO).await
    }

    /// On another radio scenario.
    pub(crate) async fn start_scenario(security: DeviceSecurity, manager: ManagerConfig, scenario: &str) -> Self {
        Self::start_full(security, manager, false, scenario).await
    }

    async fn start_full(security: DeviceSecurity, manager: ManagerConfig, custom: bool, scenario: &str) -> Self {
        let radio = SimRadio::from_toml_str(scenario).unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        // Every run of the binary is a new client with its own session; each run that completes its handshake takes
        // the place of one whose client left, so the default table holds any number of runs in a row.
        let config = ServiceConfig { manager, sessions: SessionLimits::default(), ..ServiceConfig::default() };
        let service = ProvisioningService::new(config, Arc::new(radio), NetworkStore::open(state_dir.path())).unwrap();
        if custom {
            service.create_endpoint("custom-data").await.unwrap();
        }
        let listener = wifiprov_transport_http::listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let http: Vec<Arc<dyn Frontend>> =
            vec![Arc::new(HttpFrontend::bound(listener, HttpConfig::default()).unwrap())];
        service.start_provisioning(security.clone(), http).await.unwrap();
        if custom {
            let handler = |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> {
                Ok([b"got:".as_slice(), request].concat())
            };
            service.register_endpoint("custom-data", Arc::new(handler)).await.unwrap();
        }
        Self { _service: service, addr, security, _state_dir: state_dir }
    }

    /// `--device ADDR` and the matching credentials.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec!["--device".to_owned(), self.addr.to_string()];
        args.extend(creds(&self.security));
        args
    }
}

/// An address where nothing listens.
pub(crate) async fn dead_address() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// What a run of the binary produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Stdout as exactly one JSON object on one line.
    pub(crate) fn json(&self) -> serde_json::Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "--json prints exactly one line: {self:#?}");
        let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert!(value.is_object(), "{value}");
        value
    }

    /// Fails if any secret appears in stdout or stderr.
    pub(crate) fn assert_no_secrets(&self) {
        for secret in SECRETS {
            assert!(!self.stdout.contains(secret), "stdout leaks {secret:?}: {self:#?}");
            assert!(!self.stderr.contains(secret), "stderr leaks {secret:?}: {self:#?}");
        }
    }

    pub(crate) fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code: {self:#?}");
        self
    }
}

/// Runs `wifiprov ARGS` with stdin closed.
pub(crate) async fn wifiprov<S: AsRef<str>>(args: &[S]) -> Run {
    wifiprov_with(args, None, &[]).await
}

/// Runs `wifiprov ARGS` with `stdin` piped in (or closed) and extra environment variables. The runtime keeps
/// serving the daemon meanwhile; a run that hangs fails the test after a deadline.
pub(crate) async fn wifiprov_with<S: AsRef<str>>(args: &[S], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wifiprov"));
    command.args(args.iter().map(AsRef::as_ref));
    for var in [
        "WIFIPROV_DEVICE",
        "WIFIPROV_POP",
        "WIFIPROV_SEC2_USERNAME",
        "WIFIPROV_SEC2_PASSWORD",
        "WIFIPROV_PASSPHRASE",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("wifiprov did not finish in time")
        .unwrap();
    Run {
        code: output.status.code().expect("wifiprov was killed by a signal"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `[a, b]` and `[c]` → `[a, b, c]`, as owned strings.
pub(crate) fn cat(parts: &[&[String]]) -> Vec<String> {
    parts.iter().flat_map(|p| p.iter().cloned()).collect()
}

/// String slices to owned arguments.
pub(crate) fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}
