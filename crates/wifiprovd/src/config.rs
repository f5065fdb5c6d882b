//! The daemon's configuration: a TOML file and command-line flags (flags win), validated into
//! [`DaemonConfig`] before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use wifiprov_manager::{AutoStop, ManagerConfig};
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::GuessLimit;
use wifiprov_proto::rng::SecureRandom;
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier};

/// A secret setting (PoP, password, SoftAP key): wiped when dropped, `<redacted>` under `Debug`, read only
/// through [`Secret::expose`] so that every place that shows it can be found.
#[derive(Clone, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Secret(zeroize::Zeroizing<String>);

/// Constant-time in the bytes, like every secret comparison.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), other.0.as_bytes()).into()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(zeroize::Zeroizing::new(value))
    }
}

impl Secret {
    /// The secret in clear.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(zeroize::Zeroizing::new(value.to_owned()))
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(value))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Settings as written in the TOML file or given as flags; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The provisioning transports: `http` (SoftAP provisioning, or any IP interface), `ble`, or both at once.
    pub transport: Option<OneOrMany>,
    /// Address and port of the HTTP transport.
    pub listen: Option<SocketAddr>,
    /// The Bluetooth adapter of the BLE transport (`hci0`); BlueZ's default adapter when absent.
    pub ble_adapter: Option<String>,
    /// Security scheme, 0, 1 or 2.
    pub security: Option<u8>,
    /// Security 1 proof of possession.
    pub pop: Option<Secret>,
    /// Security 2 username.
    pub sec2_username: Option<String>,
    /// Security 2 password (the verifier is derived at start).
    pub sec2_password: Option<Secret>,
    /// Security 2 salt, hex (with `sec2_verifier`, instead of a password).
    pub sec2_salt: Option<String>,
    /// Security 2 verifier, hex.
    pub sec2_verifier: Option<String>,
    /// Security 2 nonce rule, 0 (legacy) or 1.
    pub sec2_patch: Option<u8>,
    /// Device name shown to apps (BLE name, SoftAP SSID, QR payload).
    pub service_name: Option<String>,
    /// SoftAP passphrase, for the QR code and printed instructions.
    pub service_key: Option<Secret>,
    /// Directory of the persisted state.
    pub state_dir: Option<PathBuf>,
    /// Wi-Fi backend: `sim` (the simulated radio) or `networkmanager`.
    pub backend: Option<String>,
    /// Scenario file of the simulated radio.
    pub scenario: Option<PathBuf>,
    /// The Wi-Fi interface NetworkManager should drive (`networkmanager` backend).
    pub wifi_interface: Option<String>,
    /// The SoftAP's interface, made on the station's radio when missing (`softap` transport; default `uap0`).
    pub softap_interface: Option<String>,
    /// Stop provisioning automatically after success.
    pub auto_stop: Option<bool>,
    /// Upper bound on how long provisioning stays up after success, in seconds.
    pub auto_stop_timeout_secs: Option<u64>,
    /// Connection attempts before reporting a failure; 0 = ESP's legacy behaviour.
    pub connect_attempts: Option<u32>,
    /// Delay before connecting after ApplyConfig, in milliseconds.
    pub connect_delay_ms: Option<u64>,
    /// Start provisioning even when a network is provisioned already.
    pub always_provision: Option<bool>,
    /// How many networks are saved at most.
    pub max_networks: Option<usize>,
    /// How long one attempt at a saved network may take, in seconds.
    pub attempt_timeout_secs: Option<u64>,
    /// The pause between rounds through the saved networks when none works, in seconds.
    pub retry_interval_secs: Option<u64>,
    /// After a lost link: how long to retry before provisioning reopens, in seconds.
    pub reopen_grace_secs: Option<u64>,
    /// Reopen provisioning by itself when the device is offline.
    pub reopen: Option<bool>,
    /// Sessions kept at once by the transport.
    pub max_sessions: Option<usize>,
    /// Advertise the service over mDNS (`_esp_wifi_prov._tcp`).
    pub mdns: Option<bool>,
    /// Interfaces to advertise on; empty means every interface.
    pub mdns_interfaces: Option<Vec<String>>,
    /// Custom endpoints served by programs, after the built-in ones, in this order.
    pub custom_endpoint: Option<Vec<RawCustomEndpoint>>,
    /// Wrong proofs (PoP, security 2 password) in a row answered before handshakes are refused for a while.
    pub guess_free_failures: Option<u32>,
    /// The first wait after the free failures, in seconds; it doubles with every further failure.
    pub guess_backoff_secs: Option<u64>,
    /// The longest wait, in seconds: the sustained guessing rate is one per this long.
    pub guess_max_backoff_secs: Option<u64>,
    /// Print the PoP or password and the QR payload at start even when stdout is not a terminal.
    pub show_credentials: Option<bool>,
}

/// One value or a list of them (`transport = "ble"` or `transport = ["http", "ble"]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// A custom endpoint as written in the TOML file (`[[custom_endpoint]]`) or given as
/// `--custom-endpoint NAME=PROGRAM`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomEndpoint {
    /// The endpoint name (`custom-data`).
    pub name: String,
    /// The program and its arguments; it gets the decrypted request on stdin and answers with its stdout.
    pub command: Vec<String>,
    /// How long one run may take, in milliseconds [default: 5000].
    pub timeout_ms: Option<u64>,
    /// The largest answer accepted, in bytes [default: 4096].
    pub max_response: Option<usize>,
}

impl RawCustomEndpoint {
    /// Parses the flag form `NAME=PROGRAM` (a program without arguments; the file gives arguments).
    pub fn from_flag(text: &str) -> Result<Self, String> {
        let (name, program) = text.split_once('=').ok_or_else(|| format!("expected NAME=PROGRAM, got {text:?}"))?;
        Ok(Self { name: name.to_owned(), command: vec![program.to_owned()], timeout_ms: None, max_response: None })
    }
}

impl RawConfig {
    /// Reads a TOML file. A file that holds a secret and that group or others may read is used, with a
    /// warning: refusing it would leave a device unprovisionable over a mode bit.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?,
        );
        let raw: Self = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.message().to_owned() })?;
        if raw.holds_secret()
            && let Some(mode) = readable_by_others(path)
        {
            tracing::warn!(
                path = %path.display(),
                mode = %format_args!("{mode:04o}"),
                "the configuration file holds a secret and is readable by group or others; chmod 600 it"
            );
        }
        Ok(raw)
    }

    /// Whether a setting is a secret that must not be readable by others.
    fn holds_secret(&self) -> bool {
        self.pop.is_some() || self.sec2_password.is_some() || self.service_key.is_some()
    }

    /// `self` with every setting of `overrides` that is present taking precedence.
    pub fn overlay(self, overrides: RawConfig) -> Self {
        macro_rules! pick {
            ($($field:ident),*) => { Self { $($field: overrides.$field.or(self.$field)),* } };
        }
        pick!(
            transport,
            listen,
            ble_adapter,
            security,
            pop,
            sec2_username,
            sec2_password,
            sec2_salt,
            sec2_verifier,
            sec2_patch,
            service_name,
            service_key,
            state_dir,
            backend,
            scenario,
            wifi_interface,
            softap_interface,
            auto_stop,
            auto_stop_timeout_secs,
            connect_attempts,
            connect_delay_ms,
            always_provision,
            max_networks,
            attempt_timeout_secs,
            retry_interval_secs,
            reopen_grace_secs,
            reopen,
            max_sessions,
            mdns,
            mdns_interfaces,
            custom_endpoint,
            guess_free_failures,
            guess_backoff_secs,
            guess_max_backoff_secs,
            show_credentials
        )
    }
}

/// Which radio the daemon provisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendChoice {
    /// The simulated radio, with a scenario file or the built-in one.
    Sim {
        /// The scenario; `None` = the built-in demo.
        scenario: Option<PathBuf>,
    },
    /// A Wi-Fi device driven through NetworkManager on the system bus.
    NetworkManager {
        /// The interface; `None` = NetworkManager's first Wi-Fi device.
        interface: Option<String>,
    },
}

/// Why the configuration is unusable. Secrets are never quoted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("{setting}: {problem}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The random source failed while generating credentials.
    #[error("random source unavailable")]
    Random,
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, problem: problem.into() }
}

/// The permission bits of `path` when group or others may read it.
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o044 != 0).then_some(mode)
}

/// What a person needs to provision the device, printed at start.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Security 0: nothing.
    None,
    /// Security 1 with this PoP.
    Pop(Secret),
    /// Security 2 with this username and, when known (given or generated), the password.
    UserPassword {
        /// The SRP username.
        username: String,
        /// The password, when the daemon knows it.
        password: Option<Secret>,
        /// Whether the daemon generated the password at this start.
        generated: bool,
    },
}

/// A transport provisioning is served on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportChoice {
    /// HTTP on [`DaemonConfig::listen`].
    Http,
    /// BLE GATT through BlueZ, advertising [`DaemonConfig::service_name`].
    Ble {
        /// The adapter; BlueZ's default adapter when `None`.
        adapter: Option<String>,
    },
    /// The device's own access point, named [`DaemonConfig::service_name`] and secured with
    /// [`DaemonConfig::service_key`], with HTTP at 192.168.4.1:80 on it (the NetworkManager backend only).
    SoftAp {
        /// Its interface, made on the station's radio when missing.
        interface: String,
    },
}

/// A validated configuration.
pub struct DaemonConfig {
    /// The provisioning transports, served at once; at least one, each at most once.
    pub transports: Vec<TransportChoice>,
    /// HTTP address.
    pub listen: SocketAddr,
    /// The security scheme with its credentials.
    pub security: DeviceSecurity,
    /// The credentials to show to a person.
    pub credentials: Credentials,
    /// Device name.
    pub service_name: String,
    /// SoftAP passphrase.
    pub service_key: Option<Secret>,
    /// Persisted state directory.
    pub state_dir: PathBuf,
    /// The radio to provision.
    pub backend: BackendChoice,
    /// Manager settings.
    pub manager: ManagerConfig,
    /// Provision even when provisioned.
    pub always_provision: bool,
    /// Session table size.
    pub max_sessions: usize,
    /// mDNS advertisement, if enabled.
    pub mdns: Option<crate::mdns::Interfaces>,
    /// Custom endpoints served by programs.
    pub custom_endpoints: Vec<crate::custom::ProgramEndpoint>,
    /// The online-guessing limit.
    pub guess_limit: GuessLimit,
    /// Print the credentials at start even when stdout is not a terminal.
    pub show_credentials: bool,
}

/// The SRP username when none is configured, as in ESP's examples.
pub const DEFAULT_USERNAME: &str = "wifiprov";
/// The HTTP address when none is configured: loopback, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl DaemonConfig {
    /// Validates `raw`. Security 2 without a password or verifier gets a fresh random password, printed at
    /// start, so the daemon never runs with a guessable default.
    pub fn validate(raw: RawConfig, rng: &mut dyn SecureRandom) -> Result<Self, ConfigError> {
        let patch = match raw.sec2_patch.unwrap_or(1) {
            0 => Sec2Patch::Legacy,
            1 => Sec2Patch::Counter,
            other => return Err(invalid("sec2_patch", format!("{other} is not 0 or 1"))),
        };
        let (security, credentials) = match raw.security.unwrap_or(2) {
            0 => (danger::sec0(), Credentials::None),
            1 => match raw.pop.clone() {
                Some(pop) if !pop.expose().is_empty() => {
                    (DeviceSecurity::sec1(ProofOfPossession::from(pop.expose())), Credentials::Pop(pop))
                }
                _ => (danger::sec1_without_pop(), Credentials::None),
            },
            2 => sec2(&raw, patch, rng)?,
            other => return Err(invalid("security", format!("{other} is not 0, 1 or 2"))),
        };
        let guess_limit = guess_limit(&raw)?;
        let names = raw.transport.clone().map_or_else(|| vec!["http".to_owned()], OneOrMany::into_vec);
        let mut transports = Vec::new();
        for name in names.iter().flat_map(|n| n.split(',')).map(str::trim) {
            let transport = match name {
                "http" => TransportChoice::Http,
                "ble" => TransportChoice::Ble { adapter: raw.ble_adapter.clone() },
                "softap" => {
                    if raw.backend.as_deref() != Some("networkmanager") {
                        return Err(invalid("transport", "softap needs the networkmanager backend"));
                    }
                    TransportChoice::SoftAp { interface: raw.softap_interface.clone().unwrap_or_else(|| "uap0".into()) }
                }
                other => {
                    return Err(invalid(
                        "transport",
                        format!("unknown transport {other:?} (available: http, ble, softap)"),
                    ));
                }
            };
            if transports.contains(&transport) {
                return Err(invalid("transport", format!("{name} is listed twice")));
            }
            transports.push(transport);
        }
        if transports.is_empty() {
            return Err(invalid("transport", "at least one is needed (http, ble)"));
        }
        let ble = transports.iter().any(|t| matches!(t, TransportChoice::Ble { .. }));
        let http = transports.contains(&TransportChoice::Http);
        let softap = transports.iter().find_map(|t| match t {
            TransportChoice::SoftAp { interface } => Some(interface.clone()),
            _ => None,
        });
        // The access point's WPA2 passphrase: a key WPA2 refuses must stop the daemon, not leave the access point
        // open.
        if softap.is_some()
            && let Some(key) = &raw.service_key
            && let Err(error) = wifiprov_backend::Passphrase::new(key.expose().to_owned())
        {
            return Err(invalid("service_key", format!("the SoftAP's WPA2 passphrase: {error}")));
        }
        if !http && softap.is_none() && raw.mdns == Some(true) {
            return Err(invalid("mdns", "advertises the HTTP transport, so it needs transport \"http\" or \"softap\""));
        }
        let service_name = raw.service_name.unwrap_or_else(default_service_name);
        if service_name.is_empty() || service_name.len() > 32 {
            return Err(invalid("service_name", "must be 1 to 32 bytes"));
        }
        if ble && service_name.len() > wifiprov_transport_ble::MAX_NAME_LEN {
            return Err(invalid(
                "service_name",
                format!("must be at most {} bytes to be advertised over BLE", wifiprov_transport_ble::MAX_NAME_LEN),
            ));
        }
        let backend = match raw.backend.as_deref().unwrap_or("sim") {
            "sim" => {
                if raw.wifi_interface.is_some() {
                    return Err(invalid("wifi_interface", "applies to the networkmanager backend only"));
                }
                BackendChoice::Sim { scenario: raw.scenario.clone() }
            }
            "networkmanager" => {
                if raw.scenario.is_some() {
                    return Err(invalid("scenario", "applies to the sim backend only"));
                }
                BackendChoice::NetworkManager { interface: raw.wifi_interface.clone() }
            }
            other => {
                return Err(invalid("backend", format!("unknown backend {other:?} (available: sim, networkmanager)")));
            }
        };
        let auto_stop = match (raw.auto_stop.unwrap_or(true), raw.auto_stop_timeout_secs) {
            (false, _) => AutoStop::Disabled,
            (true, secs) => AutoStop::After { timeout: Duration::from_secs(secs.unwrap_or(30)) },
        };
        let defaults = ManagerConfig::default();
        let max_networks = raw.max_networks.unwrap_or(defaults.max_networks);
        if !(1..=64).contains(&max_networks) {
            return Err(invalid("max_networks", "must be between 1 and 64"));
        }
        let seconds = |value: Option<u64>, name: &'static str, default: Duration| match value {
            Some(0) => Err(invalid(name, "must be at least 1 second")),
            Some(secs) => Ok(Duration::from_secs(secs)),
            None => Ok(default),
        };
        let policy = wifiprov_manager::PolicyConfig {
            attempt_timeout: seconds(
                raw.attempt_timeout_secs,
                "attempt_timeout_secs",
                defaults.policy.attempt_timeout,
            )?,
            retry_interval: seconds(raw.retry_interval_secs, "retry_interval_secs", defaults.policy.retry_interval)?,
            reopen_grace: seconds(raw.reopen_grace_secs, "reopen_grace_secs", defaults.policy.reopen_grace)?,
            reopen: raw.reopen.unwrap_or(defaults.policy.reopen),
            scan_first: defaults.policy.scan_first,
        };
        let manager = ManagerConfig {
            auto_stop,
            connect_attempts: raw.connect_attempts.unwrap_or(defaults.connect_attempts),
            connect_delay: raw.connect_delay_ms.map_or(defaults.connect_delay, Duration::from_millis),
            max_networks,
            policy,
            ..defaults
        };
        let max_sessions = raw.max_sessions.unwrap_or(8);
        if max_sessions == 0 {
            return Err(invalid("max_sessions", "must be at least 1"));
        }
        let custom_endpoints = custom_endpoints(raw.custom_endpoint.unwrap_or_default())?;
        Ok(Self {
            transports,
            listen: raw
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))),
            security,
            credentials,
            service_name,
            service_key: raw.service_key,
            state_dir: raw.state_dir.unwrap_or_else(default_state_dir),
            backend,
            manager,
            always_provision: raw.always_provision.unwrap_or(false),
            max_sessions,
            mdns: raw.mdns.unwrap_or(false).then_some(match (raw.mdns_interfaces, softap) {
                (Some(names), _) if !names.is_empty() => crate::mdns::Interfaces::Named(names),
                // Phones on the device's own access point are the ones to tell; its uplink should not learn of it.
                (_, Some(interface)) if !http => crate::mdns::Interfaces::Named(vec![interface]),
                _ => crate::mdns::Interfaces::All,
            }),
            custom_endpoints,
            guess_limit,
            show_credentials: raw.show_credentials.unwrap_or(false),
        })
    }
}

fn guess_limit(raw: &RawConfig) -> Result<GuessLimit, ConfigError> {
    let defaults = GuessLimit::default();
    let backoff = match raw.guess_backoff_secs {
        Some(0) => return Err(invalid("guess_backoff_secs", "must be at least 1 second")),
        Some(secs) => Duration::from_secs(secs),
        None => defaults.backoff,
    };
    let max_backoff = raw.guess_max_backoff_secs.map_or(defaults.max_backoff.max(backoff), Duration::from_secs);
    if max_backoff < backoff {
        return Err(invalid("guess_max_backoff_secs", "must be at least guess_backoff_secs"));
    }
    if max_backoff > Duration::from_secs(86_400) {
        return Err(invalid("guess_max_backoff_secs", "must be at most a day (86400)"));
    }
    let free_failures = raw.guess_free_failures.unwrap_or(defaults.free_failures);
    if free_failures > 100 {
        return Err(invalid("guess_free_failures", "must be at most 100"));
    }
    Ok(GuessLimit { free_failures, backoff, max_backoff })
}

fn custom_endpoints(raw: Vec<RawCustomEndpoint>) -> Result<Vec<crate::custom::ProgramEndpoint>, ConfigError> {
    let mut endpoints: Vec<crate::custom::ProgramEndpoint> = Vec::new();
    for raw in raw {
        let endpoint = crate::custom::ProgramEndpoint {
            timeout: raw.timeout_ms.map_or(crate::custom::ProgramEndpoint::DEFAULT_TIMEOUT, Duration::from_millis),
            max_response: raw.max_response.unwrap_or(crate::custom::ProgramEndpoint::DEFAULT_MAX_RESPONSE),
            name: raw.name,
            command: raw.command,
        };
        endpoint.validate().map_err(|e| invalid("custom_endpoint", e.to_string()))?;
        if endpoints.iter().any(|e| e.name == endpoint.name) {
            return Err(invalid("custom_endpoint", format!("{:?} is configured twice", endpoint.name)));
        }
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

fn sec2(
    raw: &RawConfig,
    patch: Sec2Patch,
    rng: &mut dyn SecureRandom,
) -> Result<(DeviceSecurity, Credentials), ConfigError> {
    let username = raw.sec2_username.clone().unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
    let verifier = |salt: &[u8], verifier: &[u8]| {
        Sec2Verifier::new(salt, verifier).map_err(|e| invalid("sec2_verifier", e.to_string()))
    };
    let (verifier, password, generated) =
        match (raw.sec2_password.as_ref().map(Secret::expose), &raw.sec2_salt, &raw.sec2_verifier) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid("sec2_password", "give either a password or a salt and verifier, not both"));
            }
            (None, Some(salt), Some(v)) => {
                let salt = hex::decode(salt).map_err(|_| invalid("sec2_salt", "not hex"))?;
                let v = hex::decode(v).map_err(|_| invalid("sec2_verifier", "not hex"))?;
                (verifier(&salt, &v)?, None, false)
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(invalid("sec2_salt", "a salt needs a verifier and a verifier needs a salt"));
            }
            (password, None, None) => {
                let (password, generated) = match password {
                    Some(p) if !p.is_empty() => (Secret::from(p), false),
                    Some(_) => return Err(invalid("sec2_password", "must not be empty")),
                    None => (generate_password(rng)?, true),
                };
                let creds = generate_salt_verifier(username.as_bytes(), &Password::from(password.expose()), 16, rng)
                    .map_err(|_| ConfigError::Random)?;
                (verifier(&creds.salt, &creds.verifier)?, Some(password), generated)
            }
        };
    Ok((DeviceSecurity::sec2(Arc::new(verifier), patch), Credentials::UserPassword { username, password, generated }))
}

/// 12 characters from an alphabet without look-alikes (no 0/O, 1/l/I): about 70 bits.
fn generate_password(rng: &mut dyn SecureRandom) -> Result<Secret, ConfigError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = zeroize::Zeroizing::new(String::with_capacity(12));
    while out.len() < 12 {
        let mut byte = [0u8];
        rng.fill(&mut byte).map_err(|_| ConfigError::Random)?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        if usize::from(byte[0]) < limit
            && let Some(c) = ALPHABET.get(usize::from(byte[0]) % ALPHABET.len())
        {
            out.push(char::from(*c));
        }
    }
    Ok(Secret(out))
}

/// `PROV_` and six hex digits derived from the machine id (stable across restarts), like ESP's MAC-based names.
fn default_service_name() -> String {
    use sha2::Digest as _;
    let seed = std::fs::read("/etc/machine-id").unwrap_or_else(|_| b"wifiprov".to_vec());
    let digest = sha2::Sha256::digest(&seed);
    format!("PROV_{}", hex::encode_upper(digest.get(..3).unwrap_or_default()))
}

/// `/var/lib/wifiprov` for root (the systemd unit's StateDirectory), else the XDG state directory.
fn default_state_dir() -> PathBuf {
    let is_root = std::env::var("USER").is_ok_and(|u| u == "root") || std::env::var("HOME").is_ok_and(|h| h == "/root");
    if is_root {
        return PathBuf::from("/var/lib/wifiprov");
    }
    match (std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME")) {
        (Some(state), _) => PathBuf::from(state).join("wifiprov"),
        (None, Some(home)) => PathBuf::from(home).join(".local/state/wifiprov"),
        (None, None) => PathBuf::from(".wifiprov-state"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use wifiprov_testkit::SeededRandom;

    #[test]
    fn defaults_are_secure_and_loopback() {
        let config = DaemonConfig::validate(RawConfig::default(), &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.security.version().number(), 2);
        let Credentials::UserPassword { username, password, generated } = &config.credentials else { panic!() };
        assert_eq!(username, DEFAULT_USERNAME);
        assert!(*generated && password.as_ref().unwrap().expose().len() == 12);
        assert!(config.service_name.starts_with("PROV_") && config.service_name.len() == 11);
    }

    #[test]
    fn flags_override_the_file_and_bad_values_are_named() {
        let file: RawConfig = toml::from_str("security = 1\npop = \"filepop\"\nlisten = \"127.0.0.1:9\"").unwrap();
        let flags = RawConfig { pop: Some("flagpop".into()), ..RawConfig::default() };
        let config = DaemonConfig::validate(file.overlay(flags), &mut SeededRandom::new(1)).unwrap();
        assert!(matches!(&config.credentials, Credentials::Pop(p) if p.expose() == "flagpop"));
        assert_eq!(config.listen.port(), 9);

        for (raw, setting) in [
            (RawConfig { security: Some(3), ..RawConfig::default() }, "security"),
            (RawConfig { sec2_patch: Some(2), ..RawConfig::default() }, "sec2_patch"),
            (RawConfig { backend: Some("iwd".into()), ..RawConfig::default() }, "backend"),
            (RawConfig { wifi_interface: Some("wlan0".into()), ..RawConfig::default() }, "wifi_interface"),
            (
                RawConfig {
                    backend: Some("networkmanager".into()),
                    scenario: Some("demo.toml".into()),
                    ..RawConfig::default()
                },
                "scenario",
            ),
            (RawConfig { transport: Some(OneOrMany::One("softap".into())), ..RawConfig::default() }, "transport"),
            (RawConfig { transport: Some(OneOrMany::One("wifi".into())), ..RawConfig::default() }, "transport"),
            (RawConfig { transport: Some(OneOrMany::One("http,http".into())), ..RawConfig::default() }, "transport"),
            (
                RawConfig { transport: Some(OneOrMany::One("ble".into())), mdns: Some(true), ..RawConfig::default() },
                "mdns",
            ),
            (
                RawConfig {
                    custom_endpoint: Some(vec![RawCustomEndpoint::from_flag("prov-config=/bin/cat").unwrap()]),
                    ..RawConfig::default()
                },
                "custom_endpoint",
            ),
            (
                RawConfig {
                    transport: Some(OneOrMany::One("ble".into())),
                    service_name: Some("PROV_a-name-too-long-to-advertise".into()),
                    ..RawConfig::default()
                },
                "service_name",
            ),
            (RawConfig { sec2_salt: Some("00".into()), ..RawConfig::default() }, "sec2_salt"),
            (
                RawConfig {
                    sec2_password: Some("secret-pw".into()),
                    sec2_verifier: Some("01".into()),
                    ..RawConfig::default()
                },
                "sec2_password",
            ),
        ] {
            match DaemonConfig::validate(raw, &mut SeededRandom::new(1)) {
                Err(ConfigError::Invalid { setting: s, problem }) => {
                    assert_eq!(s, setting);
                    assert!(!problem.contains("secret-pw"));
                }
                other => panic!("expected an invalid {setting}, got {:?}", other.err()),
            }
        }
        assert!(toml::from_str::<RawConfig>("lisen = \"x\"").is_err(), "typos are errors");
    }

    #[test]
    fn transports_are_chosen_alone_or_together() {
        let file: RawConfig = toml::from_str("transport = \"ble\"\nble_adapter = \"hci1\"").unwrap();
        let config = DaemonConfig::validate(file, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.transports, [TransportChoice::Ble { adapter: Some("hci1".into()) }]);
        let config = DaemonConfig::validate(RawConfig::default(), &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.transports, [TransportChoice::Http]);
        let both: RawConfig = toml::from_str("transport = [\"http\", \"ble\"]\nmdns = true").unwrap();
        let config = DaemonConfig::validate(both, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.transports, [TransportChoice::Http, TransportChoice::Ble { adapter: None }]);
        let flags = RawConfig { transport: Some(OneOrMany::One("ble, http".into())), ..RawConfig::default() };
        let config = DaemonConfig::validate(flags, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.transports.len(), 2);
    }

    #[test]
    fn the_softap_needs_networkmanager_and_is_advertised_on_its_interface() {
        let raw = |text: &str| toml::from_str::<RawConfig>(text).unwrap();
        let softap = raw("transport = \"softap\"\nbackend = \"networkmanager\"\nmdns = true");
        let config = DaemonConfig::validate(softap, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.transports, [TransportChoice::SoftAp { interface: "uap0".into() }]);
        assert_eq!(config.mdns, Some(crate::mdns::Interfaces::Named(vec!["uap0".into()])));
        let named =
            raw("transport = \"softap\"\nbackend = \"networkmanager\"\nsoftap_interface = \"ap1\"\nmdns = true");
        let config = DaemonConfig::validate(named, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.mdns, Some(crate::mdns::Interfaces::Named(vec!["ap1".into()])));
        // Beside plain HTTP, every interface, as for HTTP alone.
        let both = raw("transport = [\"softap\", \"http\"]\nbackend = \"networkmanager\"\nmdns = true");
        let config = DaemonConfig::validate(both, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.mdns, Some(crate::mdns::Interfaces::All));
        let short_key = raw("transport = \"softap\"\nbackend = \"networkmanager\"\nservice_key = \"short\"");
        assert!(matches!(
            DaemonConfig::validate(short_key, &mut SeededRandom::new(1)),
            Err(ConfigError::Invalid { setting: "service_key", .. })
        ));
        let simulated = raw("transport = \"softap\"");
        assert!(matches!(
            DaemonConfig::validate(simulated, &mut SeededRandom::new(1)),
            Err(ConfigError::Invalid { setting: "transport", .. })
        ));
    }

    #[test]
    fn the_packaged_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/wifiprovd.toml");
        let raw = RawConfig::from_file(&path).unwrap();
        let config = DaemonConfig::validate(raw, &mut SeededRandom::new(1)).unwrap();
        assert_eq!(config.transports, [TransportChoice::Http]);
    }

    #[test]
    fn custom_endpoints_come_from_the_file_and_flags() {
        let file: RawConfig = toml::from_str(
            "[[custom_endpoint]]\nname = \"custom-data\"\ncommand = [\"/bin/sh\", \"-c\", \"cat\"]\ntimeout_ms = 200\n",
        )
        .unwrap();
        let config = DaemonConfig::validate(file, &mut SeededRandom::new(1)).unwrap();
        let endpoint = config.custom_endpoints.first().unwrap();
        assert_eq!((endpoint.name.as_str(), endpoint.command.len()), ("custom-data", 3));
        assert_eq!(endpoint.timeout, Duration::from_millis(200));
        let flag = RawCustomEndpoint::from_flag("token=/usr/lib/vendor/token").unwrap();
        assert_eq!(flag.command, ["/usr/lib/vendor/token"]);
        assert!(RawCustomEndpoint::from_flag("no-program").is_err());
        let twice = RawConfig { custom_endpoint: Some(vec![flag.clone(), flag]), ..RawConfig::default() };
        assert!(DaemonConfig::validate(twice, &mut SeededRandom::new(1)).is_err());
    }

    #[test]
    fn generated_passwords_differ_and_avoid_look_alikes() {
        let a = generate_password(&mut SeededRandom::new(1)).unwrap();
        let b = generate_password(&mut SeededRandom::new(2)).unwrap();
        assert_ne!(a, b);
        assert!(!a.expose().contains(['0', 'O', '1', 'l', 'I']));
    }
}
