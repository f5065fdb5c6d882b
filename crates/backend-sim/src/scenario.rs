//! Scenario files: the TOML description of a simulated radio's surroundings.
//!
//! The format is documented at the top of `scenarios/default.toml`. Parsing goes in two steps: serde reads
//! the TOML into raw structs of plain strings and integers (rejecting unknown keys, so typos are caught), then
//! each field is checked here, so that a bad value is reported with the access point and field it belongs to
//! rather than as a bare serde message.

use core::fmt;
use core::time::Duration;
use std::collections::HashMap;
use std::net::{AddrParseError, Ipv4Addr};
use std::path::PathBuf;

use serde::Deserialize;
use wifiprov_backend::{
    AuthMode, AuthModeError, Bssid, BssidError, Channel, Passphrase, PassphraseError, Rssi, Ssid, SsidError,
    SsidVisibility,
};

use crate::access_point::{CredentialError, Presence, SimAccessPoint};

/// A scenario failed to load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its contents are invalid; the source says why.
    #[error("scenario file {} is invalid", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        #[source]
        source: Box<ScenarioError>,
    },
    /// The text is not TOML, has an unknown key, or has a value of the wrong type.
    #[error("scenario does not parse")]
    Syntax(#[source] SyntaxError),
    /// A top-level setting is invalid.
    #[error("scenario setting `{field}` is invalid")]
    Setting {
        /// The key, for example `ip4_base`.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        problem: FieldError,
    },
    /// A field of one `[[ap]]` entry is invalid.
    #[error("access point {ap}: field `{field}` is invalid")]
    AccessPoint {
        /// Which entry.
        ap: ApLabel,
        /// The key, for example `bssid`.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        problem: FieldError,
    },
    /// Two entries have the same BSSID, which the simulator uses to tell access points apart.
    #[error("access points {first} and {second} share BSSID {bssid}")]
    DuplicateBssid {
        /// The shared BSSID.
        bssid: Bssid,
        /// The earlier entry.
        first: ApLabel,
        /// The later entry.
        second: ApLabel,
    },
}

/// Where and why the scenario text failed to parse.
///
/// This keeps the TOML parser's message and position but not the parser's error itself, because that error's
/// `Display` quotes the offending source line, and that line may hold a passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", match (line, column) {
    (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
    _ => String::new(),
})]
pub struct SyntaxError {
    message: String,
    line: Option<usize>,
    column: Option<usize>,
}

impl SyntaxError {
    fn new(text: &str, err: &toml::de::Error) -> Self {
        let position = err.span().and_then(|span| text.get(..span.start)).map(|before| {
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
            let column = before.get(line_start..).map_or(0, |prefix| prefix.chars().count()) + 1;
            (line, column)
        });
        Self {
            message: err.message().trim_end().to_owned(),
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
        }
    }

    /// The parser's description of the problem.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 1-based line of the problem, when the parser reported a position.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// 1-based column (in characters) of the problem, when the parser reported a position.
    pub fn column(&self) -> Option<usize> {
        self.column
    }
}

/// Names an `[[ap]]` entry in messages: its 1-based position in the file and, once known, its SSID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApLabel {
    /// 1-based position among the `[[ap]]` entries.
    pub index: usize,
    /// The SSID as `Ssid` displays it, if it was valid.
    pub ssid: Option<String>,
}

impl fmt::Display for ApLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ssid {
            Some(ssid) => write!(f, "#{} {ssid:?}", self.index),
            None => write!(f, "#{}", self.index),
        }
    }
}

/// What is wrong with one scenario value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A required key is absent.
    #[error("value is missing")]
    Missing,
    /// Two keys that exclude each other are both present.
    #[error("conflicts with `{other}`; give only one of them")]
    Conflict {
        /// The other key.
        other: &'static str,
    },
    /// An integer is out of range.
    #[error("{value} is outside {min} to {max}")]
    OutOfRange {
        /// The rejected value.
        value: i64,
        /// Lowest allowed.
        min: i64,
        /// Highest allowed.
        max: i64,
    },
    /// A value has the wrong TOML type. Reported here rather than by serde, whose message would quote the
    /// value.
    #[error("expected {expected}")]
    WrongType {
        /// What the key takes, for example `"a string"`.
        expected: &'static str,
    },
    /// `ssid_hex` is not an even number of hex digits.
    #[error("not an even-length string of hex digits")]
    NotHex,
    /// An invalid SSID.
    #[error(transparent)]
    Ssid(#[from] SsidError),
    /// An invalid BSSID.
    #[error(transparent)]
    Bssid(#[from] BssidError),
    /// An unknown auth mode.
    #[error(transparent)]
    Auth(#[from] AuthModeError),
    /// An invalid passphrase. The message never contains the value.
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    /// A passphrase that does not fit the auth mode.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// An invalid IPv4 address.
    #[error(transparent)]
    Ip4(#[from] AddrParseError),
}

/// Scenario-wide settings that are not per access point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) scan_duration: Duration,
    pub(crate) ip4_base: Ipv4Addr,
}

impl Settings {
    const DEFAULT_SCAN_DURATION: Duration = Duration::from_millis(1500);
    const DEFAULT_IP4_BASE: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);
}

/// A checked scenario.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) settings: Settings,
    pub(crate) access_points: Vec<SimAccessPoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    scan_duration_ms: Option<u64>,
    join_latency_ms: Option<u64>,
    ip4_base: Option<String>,
    #[serde(default)]
    ap: Vec<RawAp>,
}

// Everything is optional or a plain string here so that the checks below, not serde, report missing and
// malformed values, with the access point named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAp {
    ssid: Option<String>,
    ssid_hex: Option<String>,
    bssid: Option<String>,
    channel: Option<i64>,
    rssi: Option<i64>,
    auth: Option<String>,
    // Any TOML value, so that a mistyped passphrase is reported without serde quoting it.
    passphrase: Option<toml::Value>,
    hidden: Option<bool>,
    absent: Option<bool>,
    join_latency_ms: Option<u64>,
    flaky_joins: Option<u32>,
    lose_link_after_ms: Option<u64>,
    ip4: Option<String>,
}

impl Scenario {
    pub(crate) fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        let raw: RawScenario =
            toml::from_str(text).map_err(|err| ScenarioError::Syntax(SyntaxError::new(text, &err)))?;
        let ip4_base = match raw.ip4_base {
            Some(text) => text
                .parse()
                .map_err(|err| ScenarioError::Setting { field: "ip4_base", problem: FieldError::Ip4(err) })?,
            None => Settings::DEFAULT_IP4_BASE,
        };
        let settings = Settings {
            scan_duration: raw.scan_duration_ms.map_or(Settings::DEFAULT_SCAN_DURATION, Duration::from_millis),
            ip4_base,
        };
        let join_latency = raw.join_latency_ms.map_or(SimAccessPoint::DEFAULT_JOIN_LATENCY, Duration::from_millis);

        let mut access_points = Vec::with_capacity(raw.ap.len());
        let mut seen: HashMap<Bssid, ApLabel> = HashMap::new();
        for (index, raw_ap) in (1..).zip(raw.ap) {
            let (ap, label) = check_ap(index, raw_ap, join_latency)?;
            if let Some(first) = seen.get(&ap.bssid) {
                return Err(ScenarioError::DuplicateBssid { bssid: ap.bssid, first: first.clone(), second: label });
            }
            seen.insert(ap.bssid, label);
            access_points.push(ap);
        }
        Ok(Self { settings, access_points })
    }
}

fn check_ap(index: usize, raw: RawAp, join_latency: Duration) -> Result<(SimAccessPoint, ApLabel), ScenarioError> {
    let mut label = ApLabel { index, ssid: None };
    let ssid = match (raw.ssid, raw.ssid_hex) {
        (Some(text), None) => Ssid::try_from(text).map_err(|err| invalid(&label, "ssid", err.into()))?,
        (None, Some(hex_text)) => {
            let bytes = hex::decode(hex_text).map_err(|_| invalid(&label, "ssid_hex", FieldError::NotHex))?;
            Ssid::new(bytes).map_err(|err| invalid(&label, "ssid_hex", err.into()))?
        }
        (Some(_), Some(_)) => return Err(invalid(&label, "ssid", FieldError::Conflict { other: "ssid_hex" })),
        (None, None) => return Err(invalid(&label, "ssid", FieldError::Missing)),
    };
    // From here on, messages can name the access point by SSID as well as position.
    label.ssid = Some(ssid.to_string());

    let bssid: Bssid = required(&label, "bssid", raw.bssid)?
        .parse()
        .map_err(|err: BssidError| invalid(&label, "bssid", err.into()))?;
    let channel = required(&label, "channel", raw.channel)?;
    let channel = u8::try_from(channel).ok().and_then(|value| Channel::new(value).ok()).ok_or_else(|| {
        let problem = FieldError::OutOfRange { value: channel, min: Channel::MIN.into(), max: Channel::MAX.into() };
        invalid(&label, "channel", problem)
    })?;
    let rssi = required(&label, "rssi", raw.rssi)?;
    let rssi = i8::try_from(rssi).map(Rssi::new).map_err(|_| {
        let problem = FieldError::OutOfRange { value: rssi, min: i8::MIN.into(), max: i8::MAX.into() };
        invalid(&label, "rssi", problem)
    })?;
    let auth: AuthMode = required(&label, "auth", raw.auth)?
        .parse()
        .map_err(|err: AuthModeError| invalid(&label, "auth", err.into()))?;
    let passphrase = match raw.passphrase {
        Some(toml::Value::String(text)) => {
            Some(Passphrase::new(text).map_err(|err| invalid(&label, "passphrase", err.into()))?)
        }
        Some(_) => return Err(invalid(&label, "passphrase", FieldError::WrongType { expected: "a string" })),
        None => None,
    };
    crate::access_point::check_credentials(auth, passphrase.as_ref())
        .map_err(|err| invalid(&label, "passphrase", err.into()))?;
    let ip4 =
        raw.ip4.map(|text| text.parse::<Ipv4Addr>()).transpose().map_err(|err| invalid(&label, "ip4", err.into()))?;

    let ap = SimAccessPoint {
        ssid,
        bssid,
        channel,
        rssi,
        auth,
        passphrase,
        visibility: if raw.hidden.unwrap_or(false) { SsidVisibility::Hidden } else { SsidVisibility::Broadcast },
        presence: if raw.absent.unwrap_or(false) { Presence::Absent } else { Presence::Present },
        join_latency: raw.join_latency_ms.map_or(join_latency, Duration::from_millis),
        flaky_joins: raw.flaky_joins.unwrap_or(0),
        lose_link_after: raw.lose_link_after_ms.map(Duration::from_millis),
        ip4,
    };
    Ok((ap, label))
}

fn required<T>(label: &ApLabel, field: &'static str, value: Option<T>) -> Result<T, ScenarioError> {
    value.ok_or_else(|| invalid(label, field, FieldError::Missing))
}

fn invalid(label: &ApLabel, field: &'static str, problem: FieldError) -> ScenarioError {
    ScenarioError::AccessPoint { ap: label.clone(), field, problem }
}
