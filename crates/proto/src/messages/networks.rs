//! `prov-networks`: wifiprov's saved-network endpoint (list, add, remove, move, connect).
//!
//! This endpoint is ours, not ESP-IDF's; `docs/prov-networks.md` is its specification. Devices advertise it
//! with the [`APP_LABEL`] label in `proto-ver`. Unlike the ESP endpoints, every response carries its status
//! inside its own body, and decoding is strict in both directions: the oneof body must be the one that
//! belongs to the message type. The one exception is List, whose body only carries an optional flag and may be
//! absent.

use std::net::Ipv4Addr;

use prost::Message as _;
use zeroize::Zeroize as _;

use super::config::Passphrase;
use super::{AuthMode, DecodeError, decode_wire};
use crate::wire::{self, NetMsgType as MsgType, net_payload::Payload};

/// The `proto-ver` label under which a device advertises this endpoint.
pub const APP_LABEL: &str = "networks";
/// The version of this endpoint's messages, advertised with [`APP_LABEL`].
pub const APP_VERSION: &str = "v1";

/// The outcome of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetStatus {
    /// Done (wire value 0).
    Success,
    /// The list is full and the network is new (1).
    Full,
    /// A priority index outside the list (2).
    OutOfRange,
    /// No saved network has this SSID (3).
    NotFound,
    /// A value that can never be valid: an empty SSID, a passphrase of the wrong length (4).
    InvalidArgument,
    /// The device tried to join the network and could not; the response says why (5).
    ConnectFailed,
    /// The radio is taken by a provisioning attempt; try again later (6).
    Busy,
    /// The device failed to carry out a valid request, e.g. it could not write its storage (7).
    InternalError,
    /// A number this version does not know, kept as received.
    Other(i32),
}

impl NetStatus {
    /// Whether this is [`NetStatus::Success`].
    pub fn is_success(self) -> bool {
        self == Self::Success
    }
}

impl From<i32> for NetStatus {
    fn from(raw: i32) -> Self {
        match wire::NetStatus::try_from(raw) {
            Ok(wire::NetStatus::NetSuccess) => Self::Success,
            Ok(wire::NetStatus::NetFull) => Self::Full,
            Ok(wire::NetStatus::NetOutOfRange) => Self::OutOfRange,
            Ok(wire::NetStatus::NetNotFound) => Self::NotFound,
            Ok(wire::NetStatus::NetInvalidArgument) => Self::InvalidArgument,
            Ok(wire::NetStatus::NetConnectFailed) => Self::ConnectFailed,
            Ok(wire::NetStatus::NetBusy) => Self::Busy,
            Ok(wire::NetStatus::NetInternalError) => Self::InternalError,
            Err(_) => Self::Other(raw),
        }
    }
}

impl From<NetStatus> for i32 {
    fn from(status: NetStatus) -> Self {
        let known = match status {
            NetStatus::Success => wire::NetStatus::NetSuccess,
            NetStatus::Full => wire::NetStatus::NetFull,
            NetStatus::OutOfRange => wire::NetStatus::NetOutOfRange,
            NetStatus::NotFound => wire::NetStatus::NetNotFound,
            NetStatus::InvalidArgument => wire::NetStatus::NetInvalidArgument,
            NetStatus::ConnectFailed => wire::NetStatus::NetConnectFailed,
            NetStatus::Busy => wire::NetStatus::NetBusy,
            NetStatus::InternalError => wire::NetStatus::NetInternalError,
            NetStatus::Other(raw) => return raw,
        };
        known as i32
    }
}

/// How a network to be saved authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Security {
    /// No passphrase.
    Open,
    /// WPA/WPA2 personal.
    WpaPsk,
    /// WPA3 personal (SAE) only.
    Wpa3Sae,
    /// WPA2/WPA3 transition mode.
    Wpa2Wpa3,
}

fn security_from_wire(raw: i32) -> Result<Option<Security>, DecodeError> {
    match wire::NetSecurity::try_from(raw) {
        Ok(wire::NetSecurity::NetSecUnspecified) => Ok(None),
        Ok(wire::NetSecurity::NetSecOpen) => Ok(Some(Security::Open)),
        Ok(wire::NetSecurity::NetSecWpaPsk) => Ok(Some(Security::WpaPsk)),
        Ok(wire::NetSecurity::NetSecWpa3Sae) => Ok(Some(Security::Wpa3Sae)),
        Ok(wire::NetSecurity::NetSecWpa2Wpa3) => Ok(Some(Security::Wpa2Wpa3)),
        Err(_) => Err(DecodeError::InvalidField { field: "security", value: i64::from(raw) }),
    }
}

fn security_to_wire(security: Option<Security>) -> i32 {
    let value = match security {
        None => wire::NetSecurity::NetSecUnspecified,
        Some(Security::Open) => wire::NetSecurity::NetSecOpen,
        Some(Security::WpaPsk) => wire::NetSecurity::NetSecWpaPsk,
        Some(Security::Wpa3Sae) => wire::NetSecurity::NetSecWpa3Sae,
        Some(Security::Wpa2Wpa3) => wire::NetSecurity::NetSecWpa2Wpa3,
    };
    value as i32
}

/// Why joining a network failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectFailure {
    /// The network refused the passphrase.
    Auth,
    /// No access point of the network answered.
    NotFound,
    /// No outcome within the device's per-network timeout.
    Timeout,
    /// Any other reason.
    Other,
}

impl ConnectFailure {
    /// A short lowercase description, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auth => "wrong passphrase",
            Self::NotFound => "network not found",
            Self::Timeout => "timed out",
            Self::Other => "connection failed",
        }
    }
}

fn failure_from_wire(raw: i32) -> Option<ConnectFailure> {
    match wire::NetConnectFailure::try_from(raw) {
        Ok(wire::NetConnectFailure::NetFailNone) => None,
        Ok(wire::NetConnectFailure::NetFailAuth) => Some(ConnectFailure::Auth),
        Ok(wire::NetConnectFailure::NetFailNotFound) => Some(ConnectFailure::NotFound),
        Ok(wire::NetConnectFailure::NetFailTimeout) => Some(ConnectFailure::Timeout),
        // A reason added by a newer device is still a failure.
        Ok(wire::NetConnectFailure::NetFailOther) | Err(_) => Some(ConnectFailure::Other),
    }
}

fn failure_to_wire(failure: Option<ConnectFailure>) -> i32 {
    let value = match failure {
        None => wire::NetConnectFailure::NetFailNone,
        Some(ConnectFailure::Auth) => wire::NetConnectFailure::NetFailAuth,
        Some(ConnectFailure::NotFound) => wire::NetConnectFailure::NetFailNotFound,
        Some(ConnectFailure::Timeout) => wire::NetConnectFailure::NetFailTimeout,
        Some(ConnectFailure::Other) => wire::NetConnectFailure::NetFailOther,
    };
    value as i32
}

/// A network to save (and, unless `connect` is false, to join first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddRequest {
    /// The network name, 1 to 32 bytes.
    pub ssid: Vec<u8>,
    /// The passphrase; empty for an open network.
    pub passphrase: Passphrase,
    /// The security; `None` lets the device decide (from the network it joins, or from the passphrase).
    pub security: Option<Security>,
    /// Whether the network hides its name (the device then probes for it).
    pub hidden: bool,
    /// Priority index; `None` puts a new network last and leaves a saved one where it is.
    pub priority: Option<u32>,
    /// Join the network before saving it, and save it only if that works (the FreeRTOS rule). `false` saves
    /// it as it is.
    pub connect: bool,
    /// Join only this access point.
    pub bssid: Option<[u8; 6]>,
}

impl AddRequest {
    /// A request to join and then save `ssid` with `passphrase`, at the lowest priority.
    pub fn new(ssid: impl Into<Vec<u8>>, passphrase: impl Into<Passphrase>) -> Self {
        Self {
            ssid: ssid.into(),
            passphrase: passphrase.into(),
            security: None,
            hidden: false,
            priority: None,
            connect: true,
            bssid: None,
        }
    }
}

/// A `prov-networks` command, sent by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The saved networks, merged with the latest scan; with `scan`, the device scans first.
    List {
        /// Scan before answering.
        scan: bool,
    },
    /// Save a network, or update a saved one.
    Add(AddRequest),
    /// Forget a saved network (leaving it if it is the current one).
    Remove {
        /// The network name.
        ssid: Vec<u8>,
    },
    /// Move a saved network to another priority index.
    Move {
        /// The network name.
        ssid: Vec<u8>,
        /// The new index.
        to: u32,
    },
    /// Switch to a saved network now.
    Connect {
        /// The network name.
        ssid: Vec<u8>,
    },
}

/// The link a successful add or connect brought up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    /// The network.
    pub ssid: Vec<u8>,
    /// The access point.
    pub bssid: Vec<u8>,
    /// Its channel.
    pub channel: u32,
    /// The address the device got.
    pub ip4: Ipv4Addr,
    /// Signal strength in dBm when the link came up.
    pub rssi: i32,
}

/// How the last attempt to join a saved network ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LastAttempt {
    /// It joined.
    Connected,
    /// It failed.
    Failed(ConnectFailure),
}

/// One network of a List answer: saved ones first in priority order, then scanned ones, strongest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The network name.
    pub ssid: Vec<u8>,
    /// The priority index of a saved network; `None` for one only seen in the scan.
    pub priority: Option<u32>,
    /// Whether it is saved.
    pub saved: bool,
    /// Whether the device is connected to it.
    pub connected: bool,
    /// Signal strength of its strongest visible access point in dBm, when one is visible.
    pub rssi: Option<i32>,
    /// That access point, when one is visible.
    pub bssid: Option<[u8; 6]>,
    /// Its security, in ESP's numbering.
    pub auth_mode: AuthMode,
    /// Whether it hides its name.
    pub hidden: bool,
    /// How the last attempt to join it ended, if the device tried since it started.
    pub last_attempt: Option<LastAttempt>,
}

/// A `prov-networks` answer, sent by the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::List`].
    List {
        /// The outcome (a failed scan still lists the saved networks).
        status: NetStatus,
        /// The networks.
        networks: Vec<Entry>,
        /// How many networks the device can save.
        capacity: u32,
    },
    /// Answer to [`Request::Add`].
    Add {
        /// The outcome.
        status: NetStatus,
        /// The network's priority index, on success.
        priority: u32,
        /// Whether a saved network was updated rather than a new one added.
        updated: bool,
        /// Why joining failed, with [`NetStatus::ConnectFailed`].
        failure: Option<ConnectFailure>,
        /// The link, when the device joined the network.
        connected: Option<Connected>,
    },
    /// Answer to [`Request::Remove`].
    Remove {
        /// The outcome.
        status: NetStatus,
    },
    /// Answer to [`Request::Move`].
    Move {
        /// The outcome.
        status: NetStatus,
        /// The index the network had, on success.
        from: u32,
    },
    /// Answer to [`Request::Connect`].
    Connect {
        /// The outcome.
        status: NetStatus,
        /// Why joining failed, with [`NetStatus::ConnectFailed`].
        failure: Option<ConnectFailure>,
        /// The link, on success.
        connected: Option<Connected>,
    },
}

impl Request {
    /// Encodes the request. The passphrase of an Add is in clear in the returned bytes (the session encrypts
    /// them); wiping them is the caller's job.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, payload) = match self {
            Self::List { scan } => (MsgType::TypeCmdNetList, Payload::CmdList(wire::CmdNetList { scan: *scan })),
            Self::Add(add) => {
                let cmd = wire::CmdNetAdd {
                    ssid: add.ssid.clone(),
                    passphrase: add.passphrase.as_bytes().to_vec(),
                    security: security_to_wire(add.security),
                    hidden: add.hidden,
                    priority: add.priority,
                    no_connect: !add.connect,
                    bssid: add.bssid.map(|b| b.to_vec()).unwrap_or_default(),
                };
                (MsgType::TypeCmdNetAdd, Payload::CmdAdd(cmd))
            }
            Self::Remove { ssid } => {
                (MsgType::TypeCmdNetRemove, Payload::CmdRemove(wire::CmdNetRemove { ssid: ssid.clone() }))
            }
            Self::Move { ssid, to } => {
                (MsgType::TypeCmdNetMove, Payload::CmdMove(wire::CmdNetMove { ssid: ssid.clone(), to: *to }))
            }
            Self::Connect { ssid } => {
                (MsgType::TypeCmdNetConnect, Payload::CmdConnect(wire::CmdNetConnect { ssid: ssid.clone() }))
            }
        };
        let mut envelope = wire::NetPayload { msg: msg as i32, payload: Some(payload) };
        let bytes = envelope.encode_to_vec();
        if let Some(Payload::CmdAdd(cmd)) = &mut envelope.payload {
            cmd.passphrase.zeroize();
        }
        bytes
    }

    /// Decodes a request. The body must match the message type; a List may come without one.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire::NetPayload { msg, payload } = decode_wire(bytes)?;
        let kind = MsgType::try_from(msg).map_err(|_| DecodeError::UnknownMsgType(msg))?;
        match (kind, payload) {
            (MsgType::TypeCmdNetList, None) => Ok(Self::List { scan: false }),
            (MsgType::TypeCmdNetList, Some(Payload::CmdList(cmd))) => Ok(Self::List { scan: cmd.scan }),
            (MsgType::TypeCmdNetAdd, Some(Payload::CmdAdd(mut cmd))) => {
                let passphrase = Passphrase::new(std::mem::take(&mut cmd.passphrase));
                let add = AddRequest {
                    ssid: std::mem::take(&mut cmd.ssid),
                    passphrase,
                    security: security_from_wire(cmd.security)?,
                    hidden: cmd.hidden,
                    priority: cmd.priority,
                    connect: !cmd.no_connect,
                    bssid: bssid_field(&cmd.bssid)?,
                };
                Ok(Self::Add(add))
            }
            (MsgType::TypeCmdNetRemove, Some(Payload::CmdRemove(cmd))) => Ok(Self::Remove { ssid: cmd.ssid }),
            (MsgType::TypeCmdNetMove, Some(Payload::CmdMove(cmd))) => Ok(Self::Move { ssid: cmd.ssid, to: cmd.to }),
            (MsgType::TypeCmdNetConnect, Some(Payload::CmdConnect(cmd))) => Ok(Self::Connect { ssid: cmd.ssid }),
            (
                MsgType::TypeRespNetList
                | MsgType::TypeRespNetAdd
                | MsgType::TypeRespNetRemove
                | MsgType::TypeRespNetMove
                | MsgType::TypeRespNetConnect,
                _,
            ) => Err(DecodeError::UnexpectedMsgType(msg)),
            (_, None) => Err(DecodeError::MissingPayload { msg }),
            (_, Some(other)) => Err(DecodeError::PayloadMismatch { msg, payload: payload_field(&other) }),
        }
    }
}

impl Response {
    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, payload) = match self {
            Self::List { status, networks, capacity } => {
                let resp = wire::RespNetList {
                    status: (*status).into(),
                    networks: networks.iter().map(entry_to_wire).collect(),
                    capacity: *capacity,
                };
                (MsgType::TypeRespNetList, Payload::RespList(resp))
            }
            Self::Add { status, priority, updated, failure, connected } => {
                let resp = wire::RespNetAdd {
                    status: (*status).into(),
                    priority: *priority,
                    updated: *updated,
                    failure: failure_to_wire(*failure),
                    connected: connected.as_ref().map(connected_to_wire),
                };
                (MsgType::TypeRespNetAdd, Payload::RespAdd(resp))
            }
            Self::Remove { status } => {
                (MsgType::TypeRespNetRemove, Payload::RespRemove(wire::RespNetRemove { status: (*status).into() }))
            }
            Self::Move { status, from } => (
                MsgType::TypeRespNetMove,
                Payload::RespMove(wire::RespNetMove { status: (*status).into(), from: *from }),
            ),
            Self::Connect { status, failure, connected } => {
                let resp = wire::RespNetConnect {
                    status: (*status).into(),
                    failure: failure_to_wire(*failure),
                    connected: connected.as_ref().map(connected_to_wire),
                };
                (MsgType::TypeRespNetConnect, Payload::RespConnect(resp))
            }
        };
        wire::NetPayload { msg: msg as i32, payload: Some(payload) }.encode_to_vec()
    }

    /// Decodes a response; the body matching the message type is required.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire::NetPayload { msg, payload } = decode_wire(bytes)?;
        let kind = MsgType::try_from(msg).map_err(|_| DecodeError::UnknownMsgType(msg))?;
        match (kind, payload) {
            (MsgType::TypeRespNetList, Some(Payload::RespList(resp))) => Ok(Self::List {
                status: resp.status.into(),
                networks: resp.networks.into_iter().map(entry_from_wire).collect::<Result<_, _>>()?,
                capacity: resp.capacity,
            }),
            (MsgType::TypeRespNetAdd, Some(Payload::RespAdd(resp))) => Ok(Self::Add {
                status: resp.status.into(),
                priority: resp.priority,
                updated: resp.updated,
                failure: failure_from_wire(resp.failure),
                connected: resp.connected.map(connected_from_wire).transpose()?,
            }),
            (MsgType::TypeRespNetRemove, Some(Payload::RespRemove(resp))) => {
                Ok(Self::Remove { status: resp.status.into() })
            }
            (MsgType::TypeRespNetMove, Some(Payload::RespMove(resp))) => {
                Ok(Self::Move { status: resp.status.into(), from: resp.from })
            }
            (MsgType::TypeRespNetConnect, Some(Payload::RespConnect(resp))) => Ok(Self::Connect {
                status: resp.status.into(),
                failure: failure_from_wire(resp.failure),
                connected: resp.connected.map(connected_from_wire).transpose()?,
            }),
            (
                MsgType::TypeCmdNetList
                | MsgType::TypeCmdNetAdd
                | MsgType::TypeCmdNetRemove
                | MsgType::TypeCmdNetMove
                | MsgType::TypeCmdNetConnect,
                _,
            ) => Err(DecodeError::UnexpectedMsgType(msg)),
            (_, None) => Err(DecodeError::MissingPayload { msg }),
            (_, Some(other)) => Err(DecodeError::PayloadMismatch { msg, payload: payload_field(&other) }),
        }
    }

    /// The status the device reported.
    pub fn status(&self) -> NetStatus {
        match self {
            Self::List { status, .. }
            | Self::Add { status, .. }
            | Self::Remove { status }
            | Self::Move { status, .. }
            | Self::Connect { status, .. } => *status,
        }
    }

    /// Whether this is the kind of response that answers `request`.
    pub fn answers(&self, request: &Request) -> bool {
        matches!(
            (request, self),
            (Request::List { .. }, Self::List { .. })
                | (Request::Add(_), Self::Add { .. })
                | (Request::Remove { .. }, Self::Remove { .. })
                | (Request::Move { .. }, Self::Move { .. })
                | (Request::Connect { .. }, Self::Connect { .. })
        )
    }
}

fn bssid_field(bytes: &[u8]) -> Result<Option<[u8; 6]>, DecodeError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    <[u8; 6]>::try_from(bytes)
        .map(Some)
        .map_err(|_| DecodeError::InvalidField { field: "bssid", value: i64::try_from(bytes.len()).unwrap_or(-1) })
}

fn entry_to_wire(entry: &Entry) -> wire::NetEntry {
    let (has_last_result, last_failure) = match entry.last_attempt {
        None => (false, None),
        Some(LastAttempt::Connected) => (true, None),
        Some(LastAttempt::Failed(failure)) => (true, Some(failure)),
    };
    wire::NetEntry {
        ssid: entry.ssid.clone(),
        priority: entry.priority.and_then(|p| i32::try_from(p).ok()).unwrap_or(-1),
        saved: entry.saved,
        connected: entry.connected,
        rssi: entry.rssi,
        bssid: entry.bssid.map(|b| b.to_vec()).unwrap_or_default(),
        auth_mode: u32::try_from(i32::from(entry.auth_mode)).unwrap_or(0),
        hidden: entry.hidden,
        last_failure: failure_to_wire(last_failure),
        has_last_result,
    }
}

fn entry_from_wire(entry: wire::NetEntry) -> Result<Entry, DecodeError> {
    let last_attempt = entry.has_last_result.then(|| match failure_from_wire(entry.last_failure) {
        None => LastAttempt::Connected,
        Some(failure) => LastAttempt::Failed(failure),
    });
    Ok(Entry {
        priority: u32::try_from(entry.priority).ok(),
        saved: entry.saved,
        connected: entry.connected,
        rssi: entry.rssi,
        bssid: bssid_field(&entry.bssid)?,
        auth_mode: AuthMode::from(i32::try_from(entry.auth_mode).unwrap_or(i32::MAX)),
        hidden: entry.hidden,
        last_attempt,
        ssid: entry.ssid,
    })
}

fn connected_to_wire(link: &Connected) -> wire::NetConnected {
    wire::NetConnected {
        ssid: link.ssid.clone(),
        bssid: link.bssid.clone(),
        channel: link.channel,
        ip4: link.ip4.to_string(),
        rssi: link.rssi,
    }
}

fn connected_from_wire(link: wire::NetConnected) -> Result<Connected, DecodeError> {
    let ip4 = link.ip4.parse().map_err(|_| DecodeError::InvalidField { field: "ip4", value: 0 })?;
    Ok(Connected { ssid: link.ssid, bssid: link.bssid, channel: link.channel, ip4, rssi: link.rssi })
}

/// Field number of a `NetPayload.payload` member.
fn payload_field(payload: &Payload) -> u32 {
    match payload {
        Payload::CmdList(_) => 10,
        Payload::RespList(_) => 11,
        Payload::CmdAdd(_) => 12,
        Payload::RespAdd(_) => 13,
        Payload::CmdRemove(_) => 14,
        Payload::RespRemove(_) => 15,
        Payload::CmdMove(_) => 16,
        Payload::RespMove(_) => 17,
        Payload::CmdConnect(_) => 18,
        Payload::RespConnect(_) => 19,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_request(request: Request) {
        let bytes = request.encode();
        assert_eq!(Request::decode(&bytes).expect("decodes"), request);
        assert!(matches!(Response::decode(&bytes), Err(DecodeError::UnexpectedMsgType(_))));
    }

    fn roundtrip_response(response: Response) {
        let bytes = response.encode();
        assert_eq!(Response::decode(&bytes).expect("decodes"), response);
        assert!(matches!(Request::decode(&bytes), Err(DecodeError::UnexpectedMsgType(_))));
    }

    #[test]
    fn requests_roundtrip() {
        roundtrip_request(Request::List { scan: true });
        roundtrip_request(Request::List { scan: false });
        let mut add = AddRequest::new("home", "correct-horse");
        add.priority = Some(2);
        add.hidden = true;
        add.connect = false;
        add.security = Some(Security::Wpa2Wpa3);
        add.bssid = Some([2, 0, 0, 0, 0, 1]);
        roundtrip_request(Request::Add(add));
        roundtrip_request(Request::Add(AddRequest::new("cafe", "")));
        roundtrip_request(Request::Remove { ssid: b"x".to_vec() });
        roundtrip_request(Request::Move { ssid: b"x".to_vec(), to: 3 });
        roundtrip_request(Request::Connect { ssid: b"x".to_vec() });
    }

    #[test]
    fn responses_roundtrip() {
        let connected = Connected {
            ssid: b"home".to_vec(),
            bssid: vec![2, 0, 0, 0, 0, 1],
            channel: 6,
            ip4: Ipv4Addr::new(10, 0, 0, 10),
            rssi: -40,
        };
        roundtrip_response(Response::List {
            status: NetStatus::Success,
            networks: vec![
                Entry {
                    ssid: b"home".to_vec(),
                    priority: Some(0),
                    saved: true,
                    connected: true,
                    rssi: Some(-40),
                    bssid: Some([2, 0, 0, 0, 0, 1]),
                    auth_mode: AuthMode::Wpa2Psk,
                    hidden: false,
                    last_attempt: Some(LastAttempt::Connected),
                },
                Entry {
                    ssid: b"attic".to_vec(),
                    priority: Some(1),
                    saved: true,
                    connected: false,
                    rssi: None,
                    bssid: None,
                    auth_mode: AuthMode::Open,
                    hidden: true,
                    last_attempt: Some(LastAttempt::Failed(ConnectFailure::Timeout)),
                },
                Entry {
                    ssid: b"cafe".to_vec(),
                    priority: None,
                    saved: false,
                    connected: false,
                    rssi: Some(-70),
                    bssid: Some([2, 0, 0, 0, 0, 4]),
                    auth_mode: AuthMode::Open,
                    hidden: false,
                    last_attempt: None,
                },
            ],
            capacity: 8,
        });
        roundtrip_response(Response::Add {
            status: NetStatus::Success,
            priority: 0,
            updated: false,
            failure: None,
            connected: Some(connected.clone()),
        });
        roundtrip_response(Response::Add {
            status: NetStatus::ConnectFailed,
            priority: 0,
            updated: false,
            failure: Some(ConnectFailure::Auth),
            connected: None,
        });
        roundtrip_response(Response::Remove { status: NetStatus::NotFound });
        roundtrip_response(Response::Move { status: NetStatus::Success, from: 4 });
        roundtrip_response(Response::Connect { status: NetStatus::Success, failure: None, connected: Some(connected) });
        roundtrip_response(Response::Remove { status: NetStatus::Other(99) });
    }

    #[test]
    fn bodies_must_match_their_type() {
        let mismatched = wire::NetPayload {
            msg: MsgType::TypeCmdNetRemove as i32,
            payload: Some(Payload::CmdList(Default::default())),
        }
        .encode_to_vec();
        assert_eq!(Request::decode(&mismatched), Err(DecodeError::PayloadMismatch { msg: 4, payload: 10 }));
        let missing = wire::NetPayload { msg: MsgType::TypeCmdNetAdd as i32, payload: None }.encode_to_vec();
        assert_eq!(Request::decode(&missing), Err(DecodeError::MissingPayload { msg: 2 }));
        let unknown = wire::NetPayload { msg: 77, payload: None }.encode_to_vec();
        assert_eq!(Request::decode(&unknown), Err(DecodeError::UnknownMsgType(77)));
        // No bytes at all is a List without a scan, like an empty GetStatus on prov-config.
        assert_eq!(Request::decode(&[]), Ok(Request::List { scan: false }));
        assert!(matches!(Request::decode(&[0xff, 0xff]), Err(DecodeError::Protobuf(_))));
    }

    #[test]
    fn bad_field_values_are_refused() {
        let add = wire::CmdNetAdd { ssid: b"x".to_vec(), bssid: vec![1, 2, 3], ..Default::default() };
        let bytes = wire::NetPayload { msg: MsgType::TypeCmdNetAdd as i32, payload: Some(Payload::CmdAdd(add)) }
            .encode_to_vec();
        assert_eq!(Request::decode(&bytes), Err(DecodeError::InvalidField { field: "bssid", value: 3 }));
        let add = wire::CmdNetAdd { ssid: b"x".to_vec(), security: 42, ..Default::default() };
        let bytes = wire::NetPayload { msg: MsgType::TypeCmdNetAdd as i32, payload: Some(Payload::CmdAdd(add)) }
            .encode_to_vec();
        assert_eq!(Request::decode(&bytes), Err(DecodeError::InvalidField { field: "security", value: 42 }));
    }

    #[test]
    fn debug_hides_the_passphrase() {
        let request = Request::Add(AddRequest::new("home", "correct-horse"));
        assert!(!format!("{request:?}").contains("correct-horse"));
    }
}
