//! Reaching a device and opening a secure session: transport, version, security choice, handshake.
//!
//! [`Target`] and [`Link`] are the extension point for transports: HTTP and BLE, one variant each.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tracing::debug;
use wifiprov_client::{
    BleClient, BleClientConfig, BleLink, Client, ClientError, HttpClient, Transport, TransportError,
};
use wifiprov_proto::endpoint::names;
use wifiprov_proto::rng::OsRandom;
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, Sec2Patch};
use wifiprov_proto::version::{CAP_NO_POP, CAP_NO_SEC, VersionInfo};
use wifiprov_transport_http::ClientConfig;

use crate::exit::{Code, HandshakeRefused, classified};
use crate::secrets::SecretSource;

/// The SRP username when none is given: the one ESP-IDF's examples and wifiprovd use.
pub(crate) const DEFAULT_USERNAME: &str = "wifiprov";

/// Where a device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// HTTP (SoftAP provisioning) at `host:port`.
    Http(String),
    /// BLE: the name the device advertises (ESP: `PROV_` and three bytes of its MAC), found through `adapter`
    /// (BlueZ's default adapter when `None`).
    Ble {
        /// The advertised name.
        name: String,
        /// The local Bluetooth adapter (`hci1`).
        adapter: Option<String>,
    },
}

impl Target {
    /// Parses `--device`: `host:port`, `[v6]:port`, or a host alone (port 80, as on an ESP SoftAP).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(classified(Code::Usage, "the device address is empty"));
        }
        if let Some(rest) = text.strip_prefix("http://") {
            return Self::parse(rest.trim_end_matches('/'));
        }
        if text.contains("://") {
            return Err(classified(Code::Usage, format!("unsupported device address {text:?}: give HOST:PORT")));
        }
        let has_port = match text.rsplit_once(':') {
            // `[::1]:80` has a port, `[::1]` and `::1` do not.
            Some((host, port)) => {
                !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && (!host.contains(':') || host.ends_with(']'))
            }
            None => false,
        };
        let address = match (has_port, text.contains(':') && !text.starts_with('[')) {
            (true, _) => text.to_owned(),
            (false, true) => format!("[{text}]:80"),
            (false, false) => format!("{text}:80"),
        };
        Ok(Self::Http(address))
    }

    /// `--ble NAME [--ble-adapter hciN]`: the device advertising `name`.
    pub(crate) fn ble(name: &str, adapter: Option<&str>) -> anyhow::Result<Self> {
        if name.is_empty() {
            return Err(classified(Code::Usage, "the BLE device name is empty"));
        }
        Ok(Self::Ble { name: name.to_owned(), adapter: adapter.map(str::to_owned) })
    }

    /// The option that names this device, for hints: `--device 192.168.4.1:80`, `--ble PROV_1A2B3C`.
    pub(crate) fn option(&self) -> String {
        match self {
            Self::Http(address) => format!("--device {address}"),
            Self::Ble { name, adapter: None } => format!("--ble {name}"),
            Self::Ble { name, adapter: Some(adapter) } => format!("--ble {name} --ble-adapter {adapter}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(address) => f.write_str(address),
            Self::Ble { name, .. } => f.write_str(name),
        }
    }
}

/// An open connection to a device, over whichever transport its [`Target`] names.
pub(crate) enum Link {
    /// HTTP.
    Http(HttpClient),
    /// BLE, through BlueZ.
    Ble(BleClient),
}

impl Link {
    /// Connects to `target`. For BLE, `connect_timeout` bounds both the scan for the device and the connection.
    pub(crate) async fn connect(target: &Target, connect_timeout: Duration) -> anyhow::Result<Self> {
        match target {
            Target::Http(address) => {
                let mut config = ClientConfig::default();
                config.connect_timeout = connect_timeout;
                Ok(HttpClient::connect_with(address.as_str(), config).await.map(Self::Http)?)
            }
            Target::Ble { name, adapter } => {
                let mut config = BleClientConfig::default();
                config.adapter = adapter.clone();
                config.discovery_timeout = connect_timeout;
                config.connect_timeout = connect_timeout;
                Ok(BleClient::connect(name, config).await.map(Self::Ble)?)
            }
        }
    }

    /// Ends the link. Over BLE that is a disconnect, which matters: BlueZ keeps an LE link up after the program
    /// that opened it exits, and the device cannot be found by anyone while it is linked. Over HTTP, dropping
    /// the connection is enough.
    pub(crate) async fn close(&mut self) {
        if let Self::Ble(client) = self
            && let Err(e) = client.close().await
        {
            debug!(error = %e, "closing the BLE link failed");
        }
    }
}

impl Transport for Link {
    async fn request(&mut self, endpoint: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        match self {
            Self::Http(client) => client.request(endpoint, body).await,
            Self::Ble(client) => Transport::request(client, endpoint, body).await,
        }
    }
}

/// The BLE links a run opened, closed when it ends (see [`Link::close`]), whatever became of the clients.
#[derive(Debug, Default)]
pub(crate) struct OpenLinks(Mutex<Vec<BleLink>>);

impl OpenLinks {
    /// Remembers `link` if it needs closing.
    pub(crate) fn track(&self, link: &Link) {
        if let Link::Ble(client) = link {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push(client.link());
        }
    }

    /// Closes every link remembered.
    pub(crate) async fn close_all(&self) {
        let links = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for link in links {
            if let Err(e) = link.close().await {
                debug!(error = %e, "closing the BLE link failed");
            }
        }
    }
}

/// The credentials to authenticate with, resolved only once the scheme is known.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// A forced scheme; `None` chooses from proto-ver.
    pub(crate) security: Option<u8>,
    /// Security 1 proof of possession.
    pub(crate) pop: SecretSource,
    /// Security 2 username.
    pub(crate) username: Option<String>,
    /// Security 2 password.
    pub(crate) password: SecretSource,
}

/// The scheme chosen for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Choice {
    /// 0, 1 or 2.
    pub(crate) scheme: u8,
    /// Security 2 nonce rule, from `sec_patch_ver` (absent = 0).
    pub(crate) patch: Sec2Patch,
    /// Security 1 without a PoP (`no_pop`).
    pub(crate) no_pop: bool,
    /// What the device advertises, when it says.
    pub(crate) advertised: Option<u8>,
}

/// The scheme a device advertises: `no_sec` → 0, else `sec_ver`, else 1 (firmware before IDF 5.0 has no
/// `sec_ver` and only knows security 0 and 1). `Err` carries an advertised scheme this tool does not know.
pub(crate) fn advertised_scheme(info: &VersionInfo) -> Result<u8, u64> {
    let Some(prov) = &info.prov else { return Ok(1) };
    if prov.has_cap(CAP_NO_SEC) {
        return Ok(0);
    }
    match prov.sec_ver {
        None => Ok(1),
        Some(v @ 0..=2) => u8::try_from(v).map_err(|_| v),
        Some(v) => Err(v),
    }
}

/// Chooses the scheme: `forced` when given, else what the device advertises.
pub(crate) fn choose(forced: Option<u8>, info: &VersionInfo) -> anyhow::Result<Choice> {
    let advertised = advertised_scheme(info);
    let scheme = match (forced, advertised) {
        (Some(s), _) => s,
        (None, Ok(s)) => s,
        (None, Err(v)) => {
            return Err(classified(
                Code::Security,
                format!("the device uses security {v}, which wifiprov does not support (force one with --security)"),
            ));
        }
    };
    let prov = info.prov.as_ref();
    Ok(Choice {
        scheme,
        patch: Sec2Patch::from_level(prov.and_then(|p| p.sec_patch_ver).unwrap_or(0)),
        no_pop: prov.is_some_and(|p| p.has_cap(CAP_NO_POP)),
        advertised: advertised.ok(),
    })
}

/// A device with an established session.
pub(crate) struct Session {
    /// The client, ready for calls.
    pub(crate) client: Client<Link>,
    /// The device's proto-ver.
    pub(crate) info: VersionInfo,
    /// The scheme in use.
    pub(crate) choice: Choice,
}

/// Connects to `target` and reads proto-ver. On failure the link is closed again.
pub(crate) async fn connect(target: &Target, connect_timeout: Duration) -> anyhow::Result<(Client<Link>, VersionInfo)> {
    let link = Link::connect(target, connect_timeout).await.with_context(|| format!("cannot reach {target}"))?;
    let mut client = Client::new(link);
    let version = client.version().await;
    if version.is_err() {
        client.transport_mut().close().await;
    }
    let info = match version {
        Ok(info) => info,
        Err(e @ ClientError::Transport(TransportError::ConnectionClosed { .. })) => {
            // A protocomm device refuses a new session this way, e.g. when its session table is full.
            return Err(anyhow::Error::new(e).context(format!(
                "{target} refused a new session (its session table may be full of recent sessions: wait for them \
                 to expire, or restart provisioning on the device)"
            )));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read proto-ver of {target}"))),
    };
    debug!(?info, "proto-ver");
    Ok((client, info))
}

/// Connects, chooses the scheme and runs the handshake. On failure the link is closed again.
pub(crate) async fn open(target: &Target, connect_timeout: Duration, auth: &Auth) -> anyhow::Result<Session> {
    let (mut client, info) = connect(target, connect_timeout).await?;
    match secure(&mut client, &info, auth).await {
        Ok(choice) => Ok(Session { client, info, choice }),
        Err(e) => {
            client.transport_mut().close().await;
            Err(e)
        }
    }
}

/// Chooses the scheme and runs the handshake.
async fn secure(client: &mut Client<Link>, info: &VersionInfo, auth: &Auth) -> anyhow::Result<Choice> {
    let choice = choose(auth.security, info)?;
    debug!(scheme = choice.scheme, patch = choice.patch.level(), "security");
    let security = client_security(&choice, auth).await?;
    client.establish(security, &mut OsRandom).await.map_err(|e| handshake_error(e, &choice))?;
    debug!("session established");
    Ok(choice)
}

async fn client_security(choice: &Choice, auth: &Auth) -> anyhow::Result<ClientSecurity> {
    Ok(match choice.scheme {
        0 => ClientSecurity::sec0(),
        1 if choice.no_pop => {
            // A device without a PoP cannot check one, so a PoP given (say, in the environment) is not used.
            if auth.pop.is_given() {
                debug!("the device advertises no_pop: not using the given proof of possession");
            }
            ClientSecurity::sec1(ProofOfPossession::new(Vec::new()))
        }
        1 => {
            let pop = auth.pop.require("Proof of possession: ").await?;
            ClientSecurity::sec1(ProofOfPossession::from(pop.as_str()))
        }
        _ => {
            let username = auth.username.clone().unwrap_or_else(|| DEFAULT_USERNAME.to_owned());
            let password = auth.password.require(&format!("Security 2 password for {username}: ")).await?;
            ClientSecurity::sec2(username.into_bytes(), Password::from(password.as_str()), choice.patch)
        }
    })
}

/// A refused handshake becomes [`HandshakeRefused`] with advice; other failures (no connection) stay as they are.
fn handshake_error(error: ClientError, choice: &Choice) -> anyhow::Error {
    let refused = match &error {
        ClientError::Security(_) => true,
        ClientError::Transport(TransportError::ConnectionClosed { endpoint }) => endpoint == names::PROV_SESSION,
        _ => false,
    };
    if !refused {
        return anyhow::Error::new(error).context("security handshake failed");
    }
    let mut hint = match choice.scheme {
        0 => "the device needs authentication (omit --security to choose from proto-ver)".to_owned(),
        1 => "check the proof of possession (--pop)".to_owned(),
        _ => "check the username and password (--sec2-username, --sec2-password)".to_owned(),
    };
    match choice.advertised {
        Some(advertised) if advertised != choice.scheme => {
            hint.push_str(&format!(", and note that the device advertises security {advertised}"));
        }
        _ => {}
    }
    anyhow::Error::new(HandshakeRefused { scheme: choice.scheme, hint, source: error })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(json: &str) -> VersionInfo {
        VersionInfo::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn device_addresses() {
        let http = |s: &str| Target::parse(s).unwrap().to_string();
        assert_eq!(http("192.168.4.1:80"), "192.168.4.1:80");
        assert_eq!(http("192.168.4.1"), "192.168.4.1:80");
        assert_eq!(http("http://device.local:8080/"), "device.local:8080");
        assert_eq!(http("[::1]:8080"), "[::1]:8080");
        assert_eq!(http("[::1]"), "[::1]:80");
        assert_eq!(http("::1"), "[::1]:80");
        assert!(Target::parse(" ").is_err());
        assert!(Target::parse("ble://x").is_err());
    }

    #[test]
    fn ble_devices_are_named_by_their_advertised_name() {
        let ble = Target::ble("PROV_1A2B3C", None).unwrap();
        assert_eq!(ble, Target::Ble { name: "PROV_1A2B3C".into(), adapter: None });
        assert_eq!(ble.to_string(), "PROV_1A2B3C");
        assert_eq!(ble.option(), "--ble PROV_1A2B3C");
        assert_eq!(Target::ble("PROV_1", Some("hci1")).unwrap().option(), "--ble PROV_1 --ble-adapter hci1");
        assert_eq!(Target::parse("192.168.4.1").unwrap().option(), "--device 192.168.4.1:80");
        assert!(Target::ble("", None).is_err());
    }

    #[test]
    fn security_is_chosen_from_proto_ver() {
        fn pick(forced: Option<u8>, json: &str) -> anyhow::Result<(u8, u8, bool)> {
            choose(forced, &info(json)).map(|c| (c.scheme, c.patch.level(), c.no_pop))
        }
        let v = |ver: &str, rest: &str| format!(r#"{{"prov":{{"ver":"{ver}"{rest}}}}}"#);
        assert_eq!(pick(None, &v("v1.1", r#","cap":["no_sec","wifi_scan"]"#)).unwrap(), (0, 0, false));
        assert_eq!(pick(None, &v("v1.1", r#","sec_ver":2,"sec_patch_ver":1,"cap":[]"#)).unwrap(), (2, 1, false));
        assert_eq!(pick(None, &v("v1.1", r#","sec_ver":2,"cap":[]"#)).unwrap(), (2, 0, false), "absent = patch 0");
        assert_eq!(pick(None, &v("v1.1", r#","sec_ver":1,"cap":["no_pop"]"#)).unwrap(), (1, 0, true));
        assert_eq!(pick(None, &v("v1.0", r#","cap":["wifi_scan"]"#)).unwrap(), (1, 0, false), "old firmware");
        assert_eq!(pick(None, "v1.0").unwrap().0, 1, "not JSON at all");
        assert_eq!(pick(Some(2), &v("v1.1", r#","sec_ver":1"#)).unwrap().0, 2, "the flag wins");
        assert!(pick(None, &v("v1.1", r#","sec_ver":7"#)).is_err());
    }
}
