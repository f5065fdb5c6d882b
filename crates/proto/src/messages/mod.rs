//! Typed messages of the three ordinary provisioning endpoints: `prov-config` ([`config`]), `prov-scan`
//! ([`scan`]) and `prov-ctrl` ([`ctrl`]), and of wifiprov's own `prov-networks` ([`networks`], whose rules
//! are its own; see there).
//!
//! The prost-generated structs in `crate::wire` mirror the `.proto` files field for field, zero defaults and
//! all. They stay private to this crate; everything outside it speaks the hand-written types here, which can
//! only hold meaningful combinations and which hide where each endpoint happens to keep its status code.
//!
//! Every endpoint has a `Request` (client to device) and a `Response` (device to client), each with
//! `encode(&self) -> Vec<u8>` and `decode(&[u8]) -> Result<Self, DecodeError>`, so both sides use the same
//! types: a device decodes requests and encodes responses, a client the reverse. The bytes are the plaintext
//! carried inside the session's encryption.
//!
//! # Encoding
//!
//! Encoding reproduces, byte for byte, what the reference implementations send:
//!
//! - Requests are encoded like `esp_prov`. A command whose oneof body carries data (SetConfig, ScanStart,
//!   ScanResult) sets it. So does GetStatus, which `esp_prov` sends as an empty `cmd_get_status` body with the
//!   zero message type left out (`52 00`). The other bodiless commands (ApplyConfig, ScanStatus, CtrlReset,
//!   CtrlReprov) are sent as the message type alone, with no oneof.
//! - Responses are encoded like an ESP-IDF device: the message type is the request's plus one and the
//!   response body is always present, even when it is empty.
//!
//! # Decoding: how lenient, and where
//!
//! An ESP-IDF device picks its handler from the `msg` field alone. The handler of a command that carries data
//! then reads its oneof body without checking which member is set; the other handlers never look at the body.
//! The request decoders follow that, so they accept everything an ESP device accepts and nothing that would
//! make one misbehave:
//!
//! - SetConfig, ScanStart and ScanResult need their own body. A missing body is
//!   [`DecodeError::MissingPayload`]; a different oneof member is [`DecodeError::PayloadMismatch`] (the C
//!   device would read the wrong union member there).
//! - GetStatus, ApplyConfig, ScanStatus, CtrlReset and CtrlReprov are accepted with any body or none at all,
//!   and the body is ignored, as on the device. A request made of no bytes at all is therefore a GetStatus on
//!   `prov-config` (whose zero message type is GetStatus).
//! - Fields that do not belong to the message (for instance a `status` in a scan or ctrl request) and unknown
//!   field numbers are ignored.
//!
//! The response decoders, used by a client, are stricter where leniency could turn a failure into a success:
//!
//! - A body that carries data is required: all three `prov-config` responses (their status lives inside the
//!   body), ScanStatus and ScanResult. The empty ScanStart, CtrlReset and CtrlReprov bodies may be absent.
//! - A oneof member that belongs to another message type is always an error in a response.
//! - In a GetStatus answer, the station state and its detail must agree; see
//!   [`config::StatusReport`] for the accepted combinations.
//!
//! In both directions a message type of the other direction is [`DecodeError::UnexpectedMsgType`], and a
//! number outside the endpoint's list (including the reserved `prov-ctrl` type 0) is
//! [`DecodeError::UnknownMsgType`].
//!
//! Enumerated values inside messages are open: [`Status`], [`AuthMode`] and [`config::FailReason`] keep a
//! number they have no name for in their `Other` variant instead of failing, because devices do send such
//! numbers (an ESP-IDF device copies its Wi-Fi driver's authentication mode into scan results, and the driver
//! knows more modes than the `.proto` file lists). The station state is the exception: an unknown state
//! number is an error, since nothing sensible can be said about it.
//!
//! Decoding is canonicalising: re-encoding a decoded message gives the bytes the reference implementations
//! would send for it, which are the original bytes for everything they produce.

use crate::wire;

pub mod config;
pub mod ctrl;
pub mod networks;
pub mod scan;

#[cfg(test)]
mod tests;

/// Status code carried by every response (and by the session endpoint).
///
/// Where it sits on the wire differs per endpoint (inside the response body on `prov-config`, in the
/// envelope on `prov-scan` and `prov-ctrl`); the typed messages hide that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The request was carried out (wire value 0).
    Success,
    /// The security scheme is not the one the device runs (1).
    InvalidSecScheme,
    /// The message could not be parsed (2).
    InvalidProto,
    /// The device already serves as many sessions as it can (3).
    TooManySessions,
    /// A field of the request was out of range, e.g. an over-long SSID (4).
    InvalidArgument,
    /// The device failed to carry out a well-formed request (5).
    InternalError,
    /// Session key agreement or verification failed (6).
    CryptoError,
    /// There is no established session for this request (7).
    InvalidSession,
    /// A number with no name in the protocol, kept as received.
    ///
    /// [`Status::from`] never produces this for 0 to 7; an `Other` built by hand with such a number encodes to
    /// that number and decodes back as the named variant.
    Other(i32),
}

impl Status {
    /// Whether this is [`Status::Success`].
    pub fn is_success(self) -> bool {
        self == Self::Success
    }
}

impl From<i32> for Status {
    fn from(raw: i32) -> Self {
        match wire::Status::try_from(raw) {
            Ok(wire::Status::Success) => Self::Success,
            Ok(wire::Status::InvalidSecScheme) => Self::InvalidSecScheme,
            Ok(wire::Status::InvalidProto) => Self::InvalidProto,
            Ok(wire::Status::TooManySessions) => Self::TooManySessions,
            Ok(wire::Status::InvalidArgument) => Self::InvalidArgument,
            Ok(wire::Status::InternalError) => Self::InternalError,
            Ok(wire::Status::CryptoError) => Self::CryptoError,
            Ok(wire::Status::InvalidSession) => Self::InvalidSession,
            Err(_) => Self::Other(raw),
        }
    }
}

impl From<Status> for i32 {
    fn from(status: Status) -> Self {
        let known = match status {
            Status::Success => wire::Status::Success,
            Status::InvalidSecScheme => wire::Status::InvalidSecScheme,
            Status::InvalidProto => wire::Status::InvalidProto,
            Status::TooManySessions => wire::Status::TooManySessions,
            Status::InvalidArgument => wire::Status::InvalidArgument,
            Status::InternalError => wire::Status::InternalError,
            Status::CryptoError => wire::Status::CryptoError,
            Status::InvalidSession => wire::Status::InvalidSession,
            Status::Other(raw) => return raw,
        };
        known as i32
    }
}

/// Authentication mode of an access point, as reported in scan results and in the connected state.
///
/// The protocol names 0 to 7. ESP-IDF devices fill this field straight from their Wi-Fi driver, whose list
/// is longer and depends on the IDF version, so larger numbers do occur; they are kept in
/// [`AuthMode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMode {
    /// No authentication (wire value 0).
    Open,
    /// WEP (1).
    Wep,
    /// WPA personal (2).
    WpaPsk,
    /// WPA2 personal (3).
    Wpa2Psk,
    /// WPA or WPA2 personal (4).
    WpaWpa2Psk,
    /// WPA2 enterprise (5).
    Wpa2Enterprise,
    /// WPA3 personal (6).
    Wpa3Psk,
    /// WPA2 or WPA3 personal (7).
    Wpa2Wpa3Psk,
    /// A number the protocol has no name for, kept as received.
    ///
    /// [`AuthMode::from`] never produces this for 0 to 7; an `Other` built by hand with such a number encodes
    /// to that number and decodes back as the named variant.
    Other(i32),
}

impl From<i32> for AuthMode {
    fn from(raw: i32) -> Self {
        match wire::WifiAuthMode::try_from(raw) {
            Ok(wire::WifiAuthMode::Open) => Self::Open,
            Ok(wire::WifiAuthMode::Wep) => Self::Wep,
            Ok(wire::WifiAuthMode::WpaPsk) => Self::WpaPsk,
            Ok(wire::WifiAuthMode::Wpa2Psk) => Self::Wpa2Psk,
            Ok(wire::WifiAuthMode::WpaWpa2Psk) => Self::WpaWpa2Psk,
            Ok(wire::WifiAuthMode::Wpa2Enterprise) => Self::Wpa2Enterprise,
            Ok(wire::WifiAuthMode::Wpa3Psk) => Self::Wpa3Psk,
            Ok(wire::WifiAuthMode::Wpa2Wpa3Psk) => Self::Wpa2Wpa3Psk,
            Err(_) => Self::Other(raw),
        }
    }
}

impl From<AuthMode> for i32 {
    fn from(mode: AuthMode) -> Self {
        let known = match mode {
            AuthMode::Open => wire::WifiAuthMode::Open,
            AuthMode::Wep => wire::WifiAuthMode::Wep,
            AuthMode::WpaPsk => wire::WifiAuthMode::WpaPsk,
            AuthMode::Wpa2Psk => wire::WifiAuthMode::Wpa2Psk,
            AuthMode::WpaWpa2Psk => wire::WifiAuthMode::WpaWpa2Psk,
            AuthMode::Wpa2Enterprise => wire::WifiAuthMode::Wpa2Enterprise,
            AuthMode::Wpa3Psk => wire::WifiAuthMode::Wpa3Psk,
            AuthMode::Wpa2Wpa3Psk => wire::WifiAuthMode::Wpa2Wpa3Psk,
            AuthMode::Other(raw) => return raw,
        };
        known as i32
    }
}

/// Why bytes could not be decoded as a message of the expected endpoint and direction.
///
/// Message types and payload fields are reported as wire numbers: `msg` is the envelope's field 1, `payload`
/// the field number of the oneof member that was present.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a valid protobuf encoding of the endpoint's envelope.
    #[error("invalid protobuf encoding")]
    Protobuf(#[source] prost::DecodeError),
    /// The message type is not one the endpoint defines (the reserved `prov-ctrl` type 0 counts as unknown).
    #[error("unknown message type {0}")]
    UnknownMsgType(i32),
    /// The message type belongs to the other direction: a response where a request was expected, or the
    /// reverse.
    #[error("message type {0} belongs to the other direction")]
    UnexpectedMsgType(i32),
    /// The message type needs its oneof body, and none was present.
    #[error("message type {msg} requires a payload but none is present")]
    MissingPayload {
        /// The message type.
        msg: i32,
    },
    /// The oneof body present belongs to a different message type than `msg`.
    #[error("payload field {payload} does not belong to message type {msg}")]
    PayloadMismatch {
        /// The message type.
        msg: i32,
        /// Field number of the oneof member that was present.
        payload: u32,
    },
    /// A field holds a value this message cannot carry (a BSSID that is not 6 bytes long, an unknown security
    /// type); `value` is the value, or the length for byte fields.
    #[error("invalid {field} field ({value})")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// The offending value, or the length of a byte field.
        value: i64,
    },
    /// A GetStatus response whose station state is unknown or does not agree with the detail sent with it
    /// (for instance `ConnectionFailed` without a failure reason).
    #[error("station state {sta_state} does not fit its detail ({})", detail_name(*.detail))]
    InvalidStationState {
        /// The `sta_state` number.
        sta_state: i32,
        /// Field number of the member of the `state` oneof that was present, if any.
        detail: Option<u32>,
    },
}

/// Name of a `RespGetStatus.state` oneof member, for error messages.
fn detail_name(detail: Option<u32>) -> &'static str {
    match detail {
        None => "none",
        Some(10) => "fail_reason",
        Some(11) => "connected",
        Some(12) => "attempt_failed",
        Some(_) => "unknown field",
    }
}

/// Parses an envelope, mapping prost's error into ours.
fn decode_wire<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, DecodeError> {
    M::decode(bytes).map_err(DecodeError::Protobuf)
}
