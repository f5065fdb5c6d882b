//! `prov-config`: hand Wi-Fi credentials to the device, make it use them, and poll how that goes.
//!
//! On this endpoint the status of each response sits inside the response body, so every response body is
//! required when decoding. See the [module above](super) for the decoding rules shared by all endpoints.

use std::fmt;

use prost::Message as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{AuthMode, DecodeError, Status, decode_wire};
use crate::wire::{
    self, WiFiConfigMsgType as MsgType, WifiStationState, resp_get_status::State, wi_fi_config_payload::Payload,
};

/// A `prov-config` command, sent by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Ask for the station's state (`TypeCmdGetStatus`). Encoded as `52 00`, like `esp_prov`.
    GetStatus,
    /// Store credentials for the station (`TypeCmdSetConfig`).
    SetConfig(SetConfig),
    /// Connect with the stored credentials (`TypeCmdApplyConfig`). Encoded as `08 04`, with no body.
    ApplyConfig,
}

/// Credentials for the station, carried by [`Request::SetConfig`].
///
/// Nothing is validated here: a device that finds a field out of range answers
/// [`Status::InvalidArgument`], and needs the request decoded to do so. (ESP-IDF wants an SSID under 32
/// bytes, a passphrase under 64 bytes, and a BSSID either empty or 6 bytes long.)
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetConfig {
    /// The network name, as raw bytes (SSIDs need not be UTF-8).
    pub ssid: Vec<u8>,
    /// The network's passphrase; empty for an open network.
    pub passphrase: Passphrase,
    /// Access point to connect to; empty for any.
    pub bssid: Vec<u8>,
    /// Channel to connect on; 0 for any.
    pub channel: i32,
}

/// A Wi-Fi passphrase: raw bytes that are overwritten with zeros when dropped and never printed.
///
/// `Debug` shows `<redacted>`. Equality is constant-time in the bytes (a length difference shows).
///
/// Zeroisation covers this value and the temporary protobuf structs this module builds or parses. It cannot
/// cover the caller's buffers: the bytes returned by [`Request::encode`] and the bytes given to
/// [`Request::decode`] contain the passphrase in clear, and are the caller's to wipe.
#[derive(Clone, Eq, Default, Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(Vec<u8>);

impl PartialEq for Passphrase {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
    }
}

impl Passphrase {
    /// Wraps the given bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The passphrase bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the passphrase is empty (an open network).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Passphrase {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Passphrase {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<&str> for Passphrase {
    fn from(text: &str) -> Self {
        Self(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A `prov-config` answer, sent by the device. Its message type is the request's plus one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::GetStatus`] (`TypeRespGetStatus`).
    GetStatus(StatusReport),
    /// Answer to [`Request::SetConfig`] (`TypeRespSetConfig`).
    SetConfig(Status),
    /// Answer to [`Request::ApplyConfig`] (`TypeRespApplyConfig`).
    ApplyConfig(Status),
}

/// The body of a GetStatus answer.
///
/// On the wire this is a status, a station-state number and an optional detail. The accepted combinations
/// are the ones below; any other is [`DecodeError::InvalidStationState`].
///
/// | `sta_state`            | detail                      | `state`                                        |
/// |------------------------|-----------------------------|------------------------------------------------|
/// | 0 `Connected`          | none                        | `None`                                         |
/// | 0 `Connected`          | `connected`                 | `Some(StationState::Connected(..))`            |
/// | 1 `Connecting`         | none                        | `Some(StationState::Connecting { None })`      |
/// | 1 `Connecting`         | `attempt_failed`            | `Some(StationState::Connecting { Some(n) })`   |
/// | 2 `Disconnected`       | none                        | `Some(StationState::Disconnected)`             |
/// | 3 `ConnectionFailed`   | `fail_reason`               | `Some(StationState::Failed(..))`               |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    /// Whether the device could determine the station's state at all.
    pub status: Status,
    /// The station's state; `None` when the device reports none.
    ///
    /// `None` is what an ESP-IDF device sends when it cannot query its own state: `status` is then
    /// [`Status::InternalError`], the state number stays at its zero default and no detail follows. (Since
    /// zero means `Connected`, `esp_prov`, which ignores the status, reports such a device as connected.)
    pub state: Option<StationState>,
}

/// State of the device's Wi-Fi station.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StationState {
    /// Connected, with details of the connection.
    Connected(ConnectedInfo),
    /// Still trying to connect.
    Connecting {
        /// When a previous attempt failed, how many attempts the device has left.
        attempts_remaining: Option<u32>,
    },
    /// Not connected, and not trying.
    Disconnected,
    /// Gave up connecting.
    Failed(FailReason),
}

/// Details of an established station connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedInfo {
    /// The station's IPv4 address in dotted-quad text, as the device formats it.
    pub ip4_addr: String,
    /// Authentication mode of the access point.
    pub auth_mode: AuthMode,
    /// SSID of the network.
    pub ssid: Vec<u8>,
    /// BSSID of the access point.
    pub bssid: Vec<u8>,
    /// Channel of the connection.
    pub channel: i32,
}

/// Why the station gave up connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The access point refused the credentials, typically a wrong passphrase (wire value 0).
    AuthError,
    /// No access point with the SSID (and BSSID, if given) was found (1).
    NetworkNotFound,
    /// A number the protocol has no name for, kept as received.
    ///
    /// [`FailReason::from`] never produces this for 0 or 1.
    Other(i32),
}

impl From<i32> for FailReason {
    fn from(raw: i32) -> Self {
        match wire::WifiConnectFailedReason::try_from(raw) {
            Ok(wire::WifiConnectFailedReason::AuthError) => Self::AuthError,
            Ok(wire::WifiConnectFailedReason::NetworkNotFound) => Self::NetworkNotFound,
            Err(_) => Self::Other(raw),
        }
    }
}

impl From<FailReason> for i32 {
    fn from(reason: FailReason) -> Self {
        match reason {
            FailReason::AuthError => wire::WifiConnectFailedReason::AuthError as i32,
            FailReason::NetworkNotFound => wire::WifiConnectFailedReason::NetworkNotFound as i32,
            FailReason::Other(raw) => raw,
        }
    }
}

impl Request {
    /// Encodes the request exactly as `esp_prov` does.
    ///
    /// For [`Request::SetConfig`] the result contains the passphrase in clear.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, payload) = match self {
            Self::GetStatus => (MsgType::TypeCmdGetStatus, Some(Payload::CmdGetStatus(wire::CmdGetStatus {}))),
            Self::SetConfig(config) => (MsgType::TypeCmdSetConfig, Some(Payload::CmdSetConfig(config.to_wire()))),
            Self::ApplyConfig => (MsgType::TypeCmdApplyConfig, None),
        };
        let mut envelope = wire::WiFiConfigPayload { msg: msg as i32, payload };
        let bytes = envelope.encode_to_vec();
        scrub(&mut envelope.payload);
        bytes
    }

    /// Decodes a request as an ESP-IDF device would accept it.
    ///
    /// GetStatus and ApplyConfig are accepted with any body or none; SetConfig needs its `cmd_set_config`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut envelope: wire::WiFiConfigPayload = decode_wire(bytes)?;
        let msg = envelope.msg;
        let request = match MsgType::try_from(msg) {
            Ok(MsgType::TypeCmdGetStatus) => Ok(Self::GetStatus),
            Ok(MsgType::TypeCmdApplyConfig) => Ok(Self::ApplyConfig),
            Ok(MsgType::TypeCmdSetConfig) => match envelope.payload.take() {
                Some(Payload::CmdSetConfig(config)) => Ok(Self::SetConfig(SetConfig::from_wire(config))),
                Some(other) => Err(DecodeError::PayloadMismatch { msg, payload: payload_field(&other) }),
                None => Err(DecodeError::MissingPayload { msg }),
            },
            Ok(MsgType::TypeRespGetStatus | MsgType::TypeRespSetConfig | MsgType::TypeRespApplyConfig) => {
                Err(DecodeError::UnexpectedMsgType(msg))
            }
            Err(_) => Err(DecodeError::UnknownMsgType(msg)),
        };
        // A body that was ignored may still hold a passphrase.
        scrub(&mut envelope.payload);
        request
    }
}

impl Response {
    /// Encodes the response exactly as an ESP-IDF device does: the body is always present.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, payload) = match self {
            Self::GetStatus(report) => (MsgType::TypeRespGetStatus, Payload::RespGetStatus(report.to_wire())),
            Self::SetConfig(status) => {
                (MsgType::TypeRespSetConfig, Payload::RespSetConfig(wire::RespSetConfig { status: (*status).into() }))
            }
            Self::ApplyConfig(status) => (
                MsgType::TypeRespApplyConfig,
                Payload::RespApplyConfig(wire::RespApplyConfig { status: (*status).into() }),
            ),
        };
        wire::WiFiConfigPayload { msg: msg as i32, payload: Some(payload) }.encode_to_vec()
    }

    /// Decodes a response. The body matching the message type is required, since it holds the status.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire::WiFiConfigPayload { msg, payload } = decode_wire(bytes)?;
        match (MsgType::try_from(msg), payload) {
            (Ok(MsgType::TypeRespGetStatus), Some(Payload::RespGetStatus(body))) => {
                StatusReport::from_wire(body).map(Self::GetStatus)
            }
            (Ok(MsgType::TypeRespSetConfig), Some(Payload::RespSetConfig(body))) => {
                Ok(Self::SetConfig(body.status.into()))
            }
            (Ok(MsgType::TypeRespApplyConfig), Some(Payload::RespApplyConfig(body))) => {
                Ok(Self::ApplyConfig(body.status.into()))
            }
            (Ok(MsgType::TypeRespGetStatus | MsgType::TypeRespSetConfig | MsgType::TypeRespApplyConfig), mut other) => {
                let error = match &other {
                    Some(body) => DecodeError::PayloadMismatch { msg, payload: payload_field(body) },
                    None => DecodeError::MissingPayload { msg },
                };
                scrub(&mut other);
                Err(error)
            }
            (Ok(MsgType::TypeCmdGetStatus | MsgType::TypeCmdSetConfig | MsgType::TypeCmdApplyConfig), mut other) => {
                scrub(&mut other);
                Err(DecodeError::UnexpectedMsgType(msg))
            }
            (Err(_), mut other) => {
                scrub(&mut other);
                Err(DecodeError::UnknownMsgType(msg))
            }
        }
    }

    /// The status the device reported.
    ///
    /// For GetStatus this says whether the device could read its station state, not whether the station
    /// is connected.
    pub fn status(&self) -> Status {
        match self {
            Self::GetStatus(report) => report.status,
            Self::SetConfig(status) | Self::ApplyConfig(status) => *status,
        }
    }

    /// Whether this is the kind of response that answers `request`.
    pub fn answers(&self, request: &Request) -> bool {
        matches!(
            (request, self),
            (Request::GetStatus, Self::GetStatus(_))
                | (Request::SetConfig(_), Self::SetConfig(_))
                | (Request::ApplyConfig, Self::ApplyConfig(_))
        )
    }
}

impl SetConfig {
    fn to_wire(&self) -> wire::CmdSetConfig {
        wire::CmdSetConfig {
            ssid: self.ssid.clone(),
            passphrase: self.passphrase.0.clone(),
            bssid: self.bssid.clone(),
            channel: self.channel,
        }
    }

    fn from_wire(config: wire::CmdSetConfig) -> Self {
        // Moving the vectors hands the passphrase's heap buffer over without copying it.
        let wire::CmdSetConfig { ssid, passphrase, bssid, channel } = config;
        Self { ssid, passphrase: Passphrase(passphrase), bssid, channel }
    }
}

impl StatusReport {
    fn to_wire(&self) -> wire::RespGetStatus {
        let (sta_state, state) = match &self.state {
            None => (WifiStationState::Connected, None),
            Some(StationState::Connected(info)) => {
                (WifiStationState::Connected, Some(State::Connected(info.to_wire())))
            }
            Some(StationState::Connecting { attempts_remaining }) => (
                WifiStationState::Connecting,
                attempts_remaining
                    .map(|attempts_remaining| State::AttemptFailed(wire::WifiAttemptFailed { attempts_remaining })),
            ),
            Some(StationState::Disconnected) => (WifiStationState::Disconnected, None),
            Some(StationState::Failed(reason)) => {
                (WifiStationState::ConnectionFailed, Some(State::FailReason((*reason).into())))
            }
        };
        wire::RespGetStatus { status: self.status.into(), sta_state: sta_state as i32, state }
    }

    fn from_wire(body: wire::RespGetStatus) -> Result<Self, DecodeError> {
        let sta_state = body.sta_state;
        let state = match (WifiStationState::try_from(sta_state), body.state) {
            (Ok(WifiStationState::Connected), None) => None,
            (Ok(WifiStationState::Connected), Some(State::Connected(info))) => {
                Some(StationState::Connected(ConnectedInfo::from_wire(info)))
            }
            (Ok(WifiStationState::Connecting), None) => Some(StationState::Connecting { attempts_remaining: None }),
            (Ok(WifiStationState::Connecting), Some(State::AttemptFailed(failed))) => {
                Some(StationState::Connecting { attempts_remaining: Some(failed.attempts_remaining) })
            }
            (Ok(WifiStationState::Disconnected), None) => Some(StationState::Disconnected),
            (Ok(WifiStationState::ConnectionFailed), Some(State::FailReason(reason))) => {
                Some(StationState::Failed(reason.into()))
            }
            (_, detail) => {
                return Err(DecodeError::InvalidStationState { sta_state, detail: detail.as_ref().map(state_field) });
            }
        };
        Ok(Self { status: body.status.into(), state })
    }
}

impl ConnectedInfo {
    fn to_wire(&self) -> wire::WifiConnectedState {
        wire::WifiConnectedState {
            ip4_addr: self.ip4_addr.clone(),
            auth_mode: self.auth_mode.into(),
            ssid: self.ssid.clone(),
            bssid: self.bssid.clone(),
            channel: self.channel,
        }
    }

    fn from_wire(info: wire::WifiConnectedState) -> Self {
        let wire::WifiConnectedState { ip4_addr, auth_mode, ssid, bssid, channel } = info;
        Self { ip4_addr, auth_mode: auth_mode.into(), ssid, bssid, channel }
    }
}

/// Overwrites the passphrase of a `cmd_set_config` body that is about to be dropped.
fn scrub(payload: &mut Option<Payload>) {
    if let Some(Payload::CmdSetConfig(config)) = payload {
        config.passphrase.zeroize();
    }
}

/// Field number of a `WiFiConfigPayload.payload` member.
fn payload_field(payload: &Payload) -> u32 {
    match payload {
        Payload::CmdGetStatus(_) => 10,
        Payload::RespGetStatus(_) => 11,
        Payload::CmdSetConfig(_) => 12,
        Payload::RespSetConfig(_) => 13,
        Payload::CmdApplyConfig(_) => 14,
        Payload::RespApplyConfig(_) => 15,
    }
}

/// Field number of a `RespGetStatus.state` member.
fn state_field(state: &State) -> u32 {
    match state {
        State::FailReason(_) => 10,
        State::Connected(_) => 11,
        State::AttemptFailed(_) => 12,
    }
}
