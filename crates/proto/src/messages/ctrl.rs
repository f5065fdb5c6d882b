//! `prov-ctrl`: reset the provisioning state after a failed attempt, or reopen provisioning after success.
//!
//! Like `prov-scan`, this endpoint keeps the response status in the envelope (field 2); the request and
//! response bodies are all empty. Message type 0 is reserved and is not a valid message. See the
//! [module above](super) for the decoding rules shared by all endpoints.

use prost::Message as _;

use super::{DecodeError, Status, decode_wire};
use crate::wire::{self, WiFiCtrlMsgType as MsgType, wi_fi_ctrl_payload::Payload};

/// A `prov-ctrl` command, sent by the client. Both are encoded as the message type alone, with no body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// Forget the credentials of a failed attempt so new ones can be sent (`TypeCmdCtrlReset`).
    Reset,
    /// Start provisioning again on a device that is already provisioned (`TypeCmdCtrlReprov`).
    Reprov,
}

/// A `prov-ctrl` answer, sent by the device. Its message type is the request's plus one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Response {
    /// Answer to [`Request::Reset`] (`TypeRespCtrlReset`).
    Reset {
        /// Whether the reset was carried out.
        status: Status,
    },
    /// Answer to [`Request::Reprov`] (`TypeRespCtrlReprov`).
    Reprov {
        /// Whether provisioning was reopened.
        status: Status,
    },
}

impl Request {
    /// Encodes the request exactly as `esp_prov` does: `08 01` or `08 03`.
    pub fn encode(&self) -> Vec<u8> {
        let msg = match self {
            Self::Reset => MsgType::TypeCmdCtrlReset,
            Self::Reprov => MsgType::TypeCmdCtrlReprov,
        };
        wire::WiFiCtrlPayload { msg: msg as i32, status: 0, payload: None }.encode_to_vec()
    }

    /// Decodes a request as an ESP-IDF device would accept it: by message type alone, ignoring any body and
    /// the envelope's `status` field.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let envelope: wire::WiFiCtrlPayload = decode_wire(bytes)?;
        let msg = envelope.msg;
        match MsgType::try_from(msg) {
            Ok(MsgType::TypeCmdCtrlReset) => Ok(Self::Reset),
            Ok(MsgType::TypeCmdCtrlReprov) => Ok(Self::Reprov),
            Ok(MsgType::TypeRespCtrlReset | MsgType::TypeRespCtrlReprov) => Err(DecodeError::UnexpectedMsgType(msg)),
            Ok(MsgType::TypeCtrlReserved) | Err(_) => Err(DecodeError::UnknownMsgType(msg)),
        }
    }
}

impl Response {
    /// Encodes the response exactly as an ESP-IDF device does: status in the envelope, empty body present.
    pub fn encode(&self) -> Vec<u8> {
        let (msg, status, payload) = match *self {
            Self::Reset { status } => {
                (MsgType::TypeRespCtrlReset, status, Payload::RespCtrlReset(wire::RespCtrlReset {}))
            }
            Self::Reprov { status } => {
                (MsgType::TypeRespCtrlReprov, status, Payload::RespCtrlReprov(wire::RespCtrlReprov {}))
            }
        };
        wire::WiFiCtrlPayload { msg: msg as i32, status: status.into(), payload: Some(payload) }.encode_to_vec()
    }

    /// Decodes a response. The empty body may be absent, but must not belong to another message type.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire::WiFiCtrlPayload { msg, status, payload } = decode_wire(bytes)?;
        let status = Status::from(status);
        match (MsgType::try_from(msg), payload) {
            (Ok(MsgType::TypeRespCtrlReset), None | Some(Payload::RespCtrlReset(_))) => Ok(Self::Reset { status }),
            (Ok(MsgType::TypeRespCtrlReprov), None | Some(Payload::RespCtrlReprov(_))) => Ok(Self::Reprov { status }),
            (Ok(MsgType::TypeRespCtrlReset | MsgType::TypeRespCtrlReprov), Some(other)) => {
                Err(DecodeError::PayloadMismatch { msg, payload: payload_field(&other) })
            }
            (Ok(MsgType::TypeCmdCtrlReset | MsgType::TypeCmdCtrlReprov), _) => Err(DecodeError::UnexpectedMsgType(msg)),
            (Ok(MsgType::TypeCtrlReserved) | Err(_), _) => Err(DecodeError::UnknownMsgType(msg)),
        }
    }

    /// The status the device reported.
    pub fn status(&self) -> Status {
        match *self {
            Self::Reset { status } | Self::Reprov { status } => status,
        }
    }

    /// Whether this is the kind of response that answers `request`.
    pub fn answers(&self, request: &Request) -> bool {
        matches!((request, self), (Request::Reset, Self::Reset { .. }) | (Request::Reprov, Self::Reprov { .. }))
    }
}

/// Field number of a `WiFiCtrlPayload.payload` member.
fn payload_field(payload: &Payload) -> u32 {
    match payload {
        Payload::CmdCtrlReset(_) => 11,
        Payload::RespCtrlReset(_) => 12,
        Payload::CmdCtrlReprov(_) => 13,
        Payload::RespCtrlReprov(_) => 14,
    }
}
