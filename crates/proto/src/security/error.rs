//! Errors of the security layer, classified by whose fault they are.

use crate::rng::RandomUnavailable;

use super::SecurityVersion;
use super::srp::SrpError;

/// Why a handshake message or an encrypted payload was refused.
///
/// None of these is ever sent to the peer: like ESP, the device answers a failure by dropping the exchange
/// (the HTTP connection is closed, BLE returns an ATT error), so the peer learns nothing it could use as an
/// oracle. [`SecurityError::blame`] tells the caller how loudly to log it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The bytes are not a protobuf message of the expected type.
    #[error("malformed {what}")]
    Malformed {
        /// Which message failed to decode.
        what: &'static str,
        /// The decoder's complaint.
        #[source]
        source: prost::DecodeError,
    },
    /// The message belongs to another security scheme than the session's.
    #[error("message is for security scheme {got}, but this session uses {expected}")]
    WrongScheme {
        /// The scheme this session was configured with.
        expected: SecurityVersion,
        /// The raw `sec_ver` (or payload) the peer sent.
        got: i32,
    },
    /// A valid message arrived in a state that does not accept it, or its type and payload disagree.
    #[error("unexpected {got} while expecting {expected}")]
    UnexpectedMessage {
        /// What the state machine was waiting for.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// A field has a length the protocol does not allow.
    #[error("{field} has {got} bytes, expected {expected}")]
    InvalidLength {
        /// The field.
        field: &'static str,
        /// The allowed lengths, in words.
        expected: &'static str,
        /// The length received.
        got: usize,
    },
    /// The peer's public key is unusable (low-order X25519 point, or an SRP value ≡ 0 mod N).
    #[error("invalid {0} public key")]
    InvalidPublicKey(&'static str),
    /// The SRP computation rejected the peer's values.
    #[error("srp: {0}")]
    Srp(#[from] SrpError),
    /// Security 1: the client's verifier does not decrypt to our key, so it used another proof of possession.
    #[error("client verifier mismatch (wrong proof of possession)")]
    PopMismatch,
    /// Security 2: the client's proof M1 is wrong, so it used another username or password.
    #[error("client proof mismatch (wrong username or password)")]
    ClientProofMismatch,
    /// Client side: the device could not prove it holds the same key.
    #[error("device proof mismatch (device does not know the proof of possession or password)")]
    DeviceProofMismatch,
    /// Client side: the device answered with a non-success status.
    #[error("device reported status {0}")]
    PeerStatus(i32),
    /// An encrypted endpoint was used before the handshake finished.
    #[error("session is not established")]
    NotEstablished,
    /// An encrypted payload failed authentication (AES-GCM tag mismatch).
    #[error("payload failed authentication")]
    DecryptFailed,
    /// The AES-GCM nonce counter would wrap; the session must be re-established.
    #[error("nonce counter exhausted, open a new session")]
    NonceExhausted,
    /// The session was used in a way its API does not allow (a caller bug, never caused by peer bytes).
    #[error("api misuse: {0}")]
    ApiMisuse(&'static str),
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomUnavailable),
}

/// Whose fault an error is; decides the log level and whether to count it towards rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Blame {
    /// The bytes could not be decoded.
    Malformed,
    /// A decodable message that breaks the protocol.
    PeerMisbehaved,
    /// The peer does not know the proof of possession or password (or, client side, the device does not).
    AuthFailed,
    /// A bug in our own caller.
    ApiMisuse,
    /// The environment failed (random source).
    Environment,
}

impl SecurityError {
    /// Classifies the error by whose fault it was.
    pub fn blame(&self) -> Blame {
        match self {
            Self::Malformed { .. } => Blame::Malformed,
            Self::WrongScheme { .. }
            | Self::UnexpectedMessage { .. }
            | Self::InvalidLength { .. }
            | Self::InvalidPublicKey(_)
            | Self::Srp(_)
            | Self::PeerStatus(_)
            | Self::NotEstablished
            | Self::DecryptFailed
            | Self::NonceExhausted => Blame::PeerMisbehaved,
            Self::PopMismatch | Self::ClientProofMismatch | Self::DeviceProofMismatch => Blame::AuthFailed,
            Self::ApiMisuse(_) => Blame::ApiMisuse,
            Self::Random(_) => Blame::Environment,
        }
    }
}

pub(crate) fn check_len(
    field: &'static str,
    expected: &'static str,
    got: usize,
    ok: bool,
) -> Result<(), SecurityError> {
    if ok { Ok(()) } else { Err(SecurityError::InvalidLength { field, expected, got }) }
}
