//! `prov-scan`: have the device scan for access points, and page through what it found.
//!
//! On this endpoint the status of a response sits in the envelope (field 2), next to a response body that an
//! ESP-IDF device always sends, even when it is empty. See the [module above](super) for the decoding rules
//! shared by all endpoints.

use prost::Message as _;

use super::{AuthMode, DecodeError, Status, decode_wire};
use crate::wire::{self, WiFiScanMsgType as MsgType, wi_fi_scan_payload::Payload};

/// A `prov-scan` command, sent by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// Start a scan (`TypeCmdScanStart`).
    Start {
        /// Answer only once the scan has finished.
        blocking: bool,
        /// Listen for beacons instead of sending probe requests.
        passive: bool,
        /// Scan this many channels at a time, returning to the provisioning channel in between; 0 scans all
        /// at once. (`esp_prov` sends 5 over HTTP and 0 over BLE.)
        group_channels: u32,
        /// Time to spend on each channel, in milliseconds.
        period_ms: u32,
    },
    /// Ask whether the scan has finished and how many results it has (`TypeCmdScanStatus`). Encoded as
    /// `08 02`, with no body.
    Status,
    /// Fetch a page of results (`TypeCmdScanResult`).
    Result {
        /// Index of the first result wanted.
        start_index: u32,
        /// Number of results wanted.
        count: u32,
    },
}

/// A `prov-scan` answer, sent by the device. Its message type is the request's plus one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::Start`] (`TypeRespScanStart`).
    Start {
        /// Whether the scan was started (or, when blocking, carried out).
        status: Status,
    },
    /// Answer to [`Request::Status`] (`TypeRespScanStatus`).
    Status {
        /// Whether the device could report on the scan.
        status: Status,
        /// Whether the scan has finished.
        finished: bool,
        /// Number of results available.
        result_count: u32,
    },
    /// Answer to [`Request::Result`] (`TypeRespScanResult`).
    Result {
        /// Whether the results could be read.
        status: Status,
        /// The page of results.
        entries: Vec<ScanEntry>,
    },
}

/// One access point found by a scan.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScanEntry {
    /// Network name, as raw bytes.
    pub ssid: Vec<u8>,
    /// Channel the access point is on.
    pub channel: u32,
    /// Received signal strength in dBm (negative in practice).
    pub rssi: i32,
    /// BSSID of the access point.
    pub bssid: Vec<u8>,
    /// Authentication mode the access point advertises. ESP-IDF devices may send numbers above 7 here.
    pub auth: AuthMode,
}

impl Request {
    /// Encodes the request exactly as `esp_prov` does.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, payload) = match *self {
            Self::Start { blocking, passive, group_channels, period_ms } => (
                MsgType::TypeCmdScanStart,
                Some(Payload::CmdScanStart(wire::CmdScanStart { blocking, passive, group_channels, period_ms })),
            ),
            Self::Status => (MsgType::TypeCmdScanStatus, None),
            Self::Result { start_index, count } => {
                (MsgType::TypeCmdScanResult, Some(Payload::CmdScanResult(wire::CmdScanResult { start_index, count })))
            }
        };
        wire::WiFiScanPayload { msg: msg as i32, status: 0, payload }.encode_to_vec()
    }

    /// Decodes a request as an ESP-IDF device would accept it.
    ///
    /// Status is accepted with any body or none; Start and Result need their own body. The envelope's
    /// `status` field is ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire::WiFiScanPayload { msg, payload, .. } = decode_wire(bytes)?;
        match (MsgType::try_from(msg), payload) {
            (Ok(MsgType::TypeCmdScanStatus), _) => Ok(Self::Status),
            (Ok(MsgType::TypeCmdScanStart), Some(Payload::CmdScanStart(body))) => Ok(Self::Start {
                blocking: body.blocking,
                passive: body.passive,
                group_channels: body.group_channels,
                period_ms: body.period_ms,
            }),
            (Ok(MsgType::TypeCmdScanResult), Some(Payload::CmdScanResult(body))) => {
                Ok(Self::Result { start_index: body.start_index, count: body.count })
            }
            (Ok(MsgType::TypeCmdScanStart | MsgType::TypeCmdScanResult), Some(other)) => {
                Err(DecodeError::PayloadMismatch { msg, payload: payload_field(&other) })
            }
            (Ok(MsgType::TypeCmdScanStart | MsgType::TypeCmdScanResult), None) => {
                Err(DecodeError::MissingPayload { msg })
            }
            (Ok(MsgType::TypeRespScanStart | MsgType::TypeRespScanStatus | MsgType::TypeRespScanResult), _) => {
                Err(DecodeError::UnexpectedMsgType(msg))
            }
            (Err(_), _) => Err(DecodeError::UnknownMsgType(msg)),
        }
    }
}

impl Response {
    /// Encodes the response exactly as an ESP-IDF device does: status in the envelope, body always present.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, status, payload) = match self {
            Self::Start { status } => {
                (MsgType::TypeRespScanStart, *status, Payload::RespScanStart(wire::RespScanStart {}))
            }
            Self::Status { status, finished, result_count } => (
                MsgType::TypeRespScanStatus,
                *status,
                Payload::RespScanStatus(wire::RespScanStatus { scan_finished: *finished, result_count: *result_count }),
            ),
            Self::Result { status, entries } => (
                MsgType::TypeRespScanResult,
                *status,
                Payload::RespScanResult(wire::RespScanResult {
                    entries: entries.iter().map(ScanEntry::to_wire).collect(),
                }),
            ),
        };
        wire::WiFiScanPayload { msg: msg as i32, status: status.into(), payload: Some(payload) }.encode_to_vec()
    }

    /// Decodes a response.
    ///
    /// The Status and Result bodies are required; the empty Start body may be absent.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire::WiFiScanPayload { msg, status, payload } = decode_wire(bytes)?;
        let status = Status::from(status);
        match (MsgType::try_from(msg), payload) {
            (Ok(MsgType::TypeRespScanStart), None | Some(Payload::RespScanStart(_))) => Ok(Self::Start { status }),
            (Ok(MsgType::TypeRespScanStatus), Some(Payload::RespScanStatus(body))) => {
                Ok(Self::Status { status, finished: body.scan_finished, result_count: body.result_count })
            }
            (Ok(MsgType::TypeRespScanResult), Some(Payload::RespScanResult(body))) => {
                Ok(Self::Result { status, entries: body.entries.into_iter().map(ScanEntry::from_wire).collect() })
            }
            (
                Ok(MsgType::TypeRespScanStart | MsgType::TypeRespScanStatus | MsgType::TypeRespScanResult),
                Some(other),
            ) => Err(DecodeError::PayloadMismatch { msg, payload: payload_field(&other) }),
            (Ok(MsgType::TypeRespScanStatus | MsgType::TypeRespScanResult), None) => {
                Err(DecodeError::MissingPayload { msg })
            }
            (Ok(MsgType::TypeCmdScanStart | MsgType::TypeCmdScanStatus | MsgType::TypeCmdScanResult), _) => {
                Err(DecodeError::UnexpectedMsgType(msg))
            }
            (Err(_), _) => Err(DecodeError::UnknownMsgType(msg)),
        }
    }

    /// The status the device reported.
    pub fn status(&self) -> Status {
        match self {
            Self::Start { status } | Self::Status { status, .. } | Self::Result { status, .. } => *status,
        }
    }

    /// Whether this is the kind of response that answers `request`.
    pub fn answers(&self, request: &Request) -> bool {
        matches!(
            (request, self),
            (Request::Start { .. }, Self::Start { .. })
                | (Request::Status, Self::Status { .. })
                | (Request::Result { .. }, Self::Result { .. })
        )
    }
}

impl ScanEntry {
    fn to_wire(&self) -> wire::WiFiScanResult {
        wire::WiFiScanResult {
            ssid: self.ssid.clone(),
            channel: self.channel,
            rssi: self.rssi,
            bssid: self.bssid.clone(),
            auth: self.auth.into(),
        }
    }

    fn from_wire(entry: wire::WiFiScanResult) -> Self {
        let wire::WiFiScanResult { ssid, channel, rssi, bssid, auth } = entry;
        Self { ssid, channel, rssi, bssid, auth: auth.into() }
    }
}

/// Field number of a `WiFiScanPayload.payload` member.
fn payload_field(payload: &Payload) -> u32 {
    match payload {
        Payload::CmdScanStart(_) => 10,
        Payload::RespScanStart(_) => 11,
        Payload::CmdScanStatus(_) => 12,
        Payload::RespScanStatus(_) => 13,
        Payload::CmdScanResult(_) => 14,
        Payload::RespScanResult(_) => 15,
    }
}
