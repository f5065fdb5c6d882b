//! Security schemes 0, 1 and 2 of ESP protocomm, device and client side, as sans-IO state machines.
//!
//! A session takes handshake bytes from the security endpoint and returns the bytes to answer with; once
//! established it encrypts and decrypts the bodies of ordinary endpoints. Randomness is passed in on every call
//! that needs it, so a whole exchange can be replayed from fixed inputs.

mod cipher;
mod error;
mod sec0;
mod sec1;
mod sec2;
pub mod srp;

use core::fmt;
use std::sync::Arc;

use prost::Message;

use crate::rng::SecureRandom;
use crate::secret::{Password, ProofOfPossession};
use crate::wire;

pub use cipher::Sec2Patch;
pub use error::{Blame, SecurityError};
pub use sec2::{SaltVerifier, Sec2Verifier, generate_salt_verifier};
pub use srp::SrpError;

/// The security scheme a session uses (`sec_ver` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecurityVersion {
    /// No security: plaintext, no authentication.
    Sec0,
    /// X25519 key agreement, optional proof of possession, AES-256-CTR.
    Sec1,
    /// SRP-6a with a username and password, AES-256-GCM.
    Sec2,
}

impl SecurityVersion {
    /// The number used on the wire and in `proto-ver`.
    pub fn number(self) -> u8 {
        match self {
            Self::Sec0 => 0,
            Self::Sec1 => 1,
            Self::Sec2 => 2,
        }
    }

    /// The scheme for a wire number.
    pub fn from_number(n: u64) -> Option<Self> {
        match n {
            0 => Some(Self::Sec0),
            1 => Some(Self::Sec1),
            2 => Some(Self::Sec2),
            _ => None,
        }
    }

    fn wire(self) -> wire::SecSchemeVersion {
        match self {
            Self::Sec0 => wire::SecSchemeVersion::SecScheme0,
            Self::Sec1 => wire::SecSchemeVersion::SecScheme1,
            Self::Sec2 => wire::SecSchemeVersion::SecScheme2,
        }
    }
}

impl fmt::Display for SecurityVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// How the device authenticates clients. Shared by all sessions; cheap to clone.
///
/// Security 2 is the default choice; security 1 needs a proof of possession. The insecure configurations
/// (security 0, security 1 without a proof of possession) are only reachable through [`crate::danger`].
#[derive(Clone)]
pub struct DeviceSecurity(pub(crate) DeviceScheme);

#[derive(Clone)]
pub(crate) enum DeviceScheme {
    Sec0,
    /// `None` is ESP's NULL PoP (advertised as `no_pop`); an empty PoP also skips the hash but is not advertised.
    Sec1 {
        pop: Option<ProofOfPossession>,
    },
    Sec2 {
        verifier: Arc<Sec2Verifier>,
        patch: Sec2Patch,
    },
}

impl DeviceSecurity {
    /// Security 1 with a proof of possession.
    pub fn sec1(pop: ProofOfPossession) -> Self {
        Self(DeviceScheme::Sec1 { pop: Some(pop) })
    }

    /// Security 2 with the device's salt and verifier. Use [`Sec2Patch::Counter`] unless old clients must work.
    pub fn sec2(verifier: Arc<Sec2Verifier>, patch: Sec2Patch) -> Self {
        Self(DeviceScheme::Sec2 { verifier, patch })
    }

    /// The scheme number.
    pub fn version(&self) -> SecurityVersion {
        match self.0 {
            DeviceScheme::Sec0 => SecurityVersion::Sec0,
            DeviceScheme::Sec1 { .. } => SecurityVersion::Sec1,
            DeviceScheme::Sec2 { .. } => SecurityVersion::Sec2,
        }
    }

    /// The `sec_patch_ver` to advertise: the nonce rule for security 2, 0 otherwise.
    pub fn patch_level(&self) -> u8 {
        match &self.0 {
            DeviceScheme::Sec2 { patch, .. } => patch.level(),
            _ => 0,
        }
    }

    /// Whether `proto-ver` advertises `no_pop` (security 1 configured without any proof of possession).
    pub fn advertises_no_pop(&self) -> bool {
        matches!(self.0, DeviceScheme::Sec1 { pop: None })
    }

    /// Whether clients must prove a secret (a non-empty PoP, a security 2 password), so that guessing it must be
    /// limited.
    pub fn has_secret(&self) -> bool {
        match &self.0 {
            DeviceScheme::Sec0 => false,
            DeviceScheme::Sec1 { pop } => pop.as_ref().is_some_and(|pop| !pop.is_empty()),
            DeviceScheme::Sec2 { .. } => true,
        }
    }
}

impl fmt::Debug for DeviceSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            DeviceScheme::Sec0 => f.write_str("Sec0"),
            DeviceScheme::Sec1 { pop } => {
                f.debug_struct("Sec1").field("pop", &pop.as_ref().map(|_| "<redacted>")).finish()
            }
            DeviceScheme::Sec2 { patch, .. } => f.debug_struct("Sec2").field("patch", patch).finish_non_exhaustive(),
        }
    }
}

/// One client's security session on the device.
pub struct DeviceSession {
    security: DeviceSecurity,
    state: DeviceState,
}

enum DeviceState {
    Sec0(sec0::DeviceState),
    Sec1(sec1::DeviceState),
    Sec2(sec2::DeviceState),
}

impl DeviceSession {
    /// A fresh session waiting for the client's first handshake message.
    pub fn new(security: &DeviceSecurity) -> Self {
        let state = match security.0 {
            DeviceScheme::Sec0 => DeviceState::Sec0(sec0::DeviceState::default()),
            DeviceScheme::Sec1 { .. } => DeviceState::Sec1(sec1::DeviceState::default()),
            DeviceScheme::Sec2 { .. } => DeviceState::Sec2(sec2::DeviceState::default()),
        };
        Self { security: security.clone(), state }
    }

    /// Handles one request on the security endpoint and returns the response body.
    ///
    /// Any failure resets the session to its initial state (keys are dropped), so a client must start over with a
    /// new first message, as with ESP; a first message in any state restarts the handshake.
    pub fn handle_handshake(&mut self, request: &[u8], rng: &mut dyn SecureRandom) -> Result<Vec<u8>, SecurityError> {
        let version = self.security.version();
        let result = decode_envelope(request).and_then(|envelope| {
            check_scheme(version, &envelope)?;
            match (&mut self.state, &self.security.0) {
                (DeviceState::Sec0(state), DeviceScheme::Sec0) => state.handle(&envelope),
                (DeviceState::Sec1(state), DeviceScheme::Sec1 { pop }) => state.handle(envelope, pop.as_ref(), rng),
                (DeviceState::Sec2(state), DeviceScheme::Sec2 { verifier, patch }) => {
                    state.handle(envelope, verifier, *patch, rng)
                }
                _ => Err(SecurityError::ApiMisuse("session state does not match its security configuration")),
            }
        });
        match result {
            Ok(proto) => Ok(encode_envelope(version, proto)),
            Err(e) => {
                *self = Self::new(&self.security);
                Err(e)
            }
        }
    }

    /// Whether the next handshake message may carry the client's proof (security 1 `Session_Command1`,
    /// security 2 `SessionCmd1`): the session has answered the first message and waits for the second.
    pub fn awaits_proof(&self) -> bool {
        match &self.state {
            DeviceState::Sec0(_) => false,
            DeviceState::Sec1(s) => s.awaits_proof(),
            DeviceState::Sec2(s) => s.awaits_proof(),
        }
    }

    /// Whether the handshake has completed and ordinary endpoints may be used.
    pub fn is_established(&self) -> bool {
        match &self.state {
            DeviceState::Sec0(s) => s.is_established(),
            DeviceState::Sec1(s) => s.is_established(),
            DeviceState::Sec2(s) => s.is_established(),
        }
    }

    /// The security scheme of this session.
    pub fn version(&self) -> SecurityVersion {
        self.security.version()
    }

    /// Decrypts a request body of an ordinary endpoint in place.
    pub fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match &mut self.state {
            // Security 0 has nothing to decrypt and, like ESP, does not require the handshake first.
            DeviceState::Sec0(_) => Ok(()),
            DeviceState::Sec1(s) => s.crypt(data),
            DeviceState::Sec2(s) => s.decrypt(data),
        }
    }

    /// Encrypts a response body of an ordinary endpoint in place.
    pub fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match &mut self.state {
            DeviceState::Sec0(_) => Ok(()),
            DeviceState::Sec1(s) => s.crypt(data),
            DeviceState::Sec2(s) => s.encrypt(data),
        }
    }
}

impl fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSession")
            .field("version", &self.version())
            .field("established", &self.is_established())
            .finish_non_exhaustive()
    }
}

/// What the client knows to authenticate itself.
#[derive(Clone)]
pub struct ClientSecurity(pub(crate) ClientScheme);

#[derive(Clone)]
pub(crate) enum ClientScheme {
    Sec0,
    Sec1 { pop: ProofOfPossession },
    Sec2 { username: Vec<u8>, password: Password, patch: Sec2Patch },
}

impl ClientSecurity {
    /// Security 0: no authentication, no encryption.
    pub fn sec0() -> Self {
        Self(ClientScheme::Sec0)
    }

    /// Security 1. Pass an empty PoP for a device that advertises `no_pop`.
    pub fn sec1(pop: ProofOfPossession) -> Self {
        Self(ClientScheme::Sec1 { pop })
    }

    /// Security 2 with the nonce rule the device advertised in `sec_patch_ver`.
    pub fn sec2(username: impl Into<Vec<u8>>, password: Password, patch: Sec2Patch) -> Self {
        Self(ClientScheme::Sec2 { username: username.into(), password, patch })
    }

    /// The scheme number.
    pub fn version(&self) -> SecurityVersion {
        match self.0 {
            ClientScheme::Sec0 => SecurityVersion::Sec0,
            ClientScheme::Sec1 { .. } => SecurityVersion::Sec1,
            ClientScheme::Sec2 { .. } => SecurityVersion::Sec2,
        }
    }
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClientScheme::Sec0 => f.write_str("Sec0"),
            ClientScheme::Sec1 { .. } => f.debug_struct("Sec1").field("pop", &"<redacted>").finish(),
            ClientScheme::Sec2 { username, patch, .. } => f
                .debug_struct("Sec2")
                .field("username", &String::from_utf8_lossy(username))
                .field("password", &"<redacted>")
                .field("patch", patch)
                .finish(),
        }
    }
}

/// The client's side of one security session.
pub struct ClientSession {
    security: ClientSecurity,
    state: ClientState,
}

enum ClientState {
    Sec0(sec0::ClientState),
    Sec1(sec1::ClientState),
    Sec2(sec2::ClientState),
}

impl ClientSession {
    /// A session that has not sent anything yet.
    pub fn new(security: ClientSecurity) -> Self {
        let state = match security.0 {
            ClientScheme::Sec0 => ClientState::Sec0(sec0::ClientState::default()),
            ClientScheme::Sec1 { .. } => ClientState::Sec1(sec1::ClientState::default()),
            ClientScheme::Sec2 { .. } => ClientState::Sec2(sec2::ClientState::default()),
        };
        Self { security, state }
    }

    /// The first handshake request. Calling it again restarts the handshake with fresh keys.
    pub fn start(&mut self, rng: &mut dyn SecureRandom) -> Result<Vec<u8>, SecurityError> {
        let version = self.security.version();
        let proto = match (&mut self.state, &self.security.0) {
            (ClientState::Sec0(s), ClientScheme::Sec0) => s.start(),
            (ClientState::Sec1(s), ClientScheme::Sec1 { .. }) => s.start(rng)?,
            (ClientState::Sec2(s), ClientScheme::Sec2 { username, .. }) => s.start(username, rng)?,
            _ => return Err(SecurityError::ApiMisuse("session state does not match its security configuration")),
        };
        Ok(encode_envelope(version, proto))
    }

    /// Handles the device's answer to the last request: returns the next request to send, or `None` once the
    /// session is established.
    pub fn handle_response(
        &mut self,
        response: &[u8],
        _rng: &mut dyn SecureRandom,
    ) -> Result<Option<Vec<u8>>, SecurityError> {
        let envelope = decode_envelope(response)?;
        let version = self.security.version();
        check_scheme(version, &envelope)?;
        let next = match (&mut self.state, &self.security.0) {
            (ClientState::Sec0(s), ClientScheme::Sec0) => s.handle(&envelope)?,
            (ClientState::Sec1(s), ClientScheme::Sec1 { pop }) => s.handle(envelope, pop)?,
            (ClientState::Sec2(s), ClientScheme::Sec2 { username, password, patch }) => {
                s.handle(envelope, username, password, *patch)?
            }
            _ => return Err(SecurityError::ApiMisuse("session state does not match its security configuration")),
        };
        Ok(next.map(|proto| encode_envelope(version, proto)))
    }

    /// Whether the handshake has completed.
    pub fn is_established(&self) -> bool {
        match &self.state {
            ClientState::Sec0(s) => s.is_established(),
            ClientState::Sec1(s) => s.is_established(),
            ClientState::Sec2(s) => s.is_established(),
        }
    }

    /// The security scheme of this session.
    pub fn version(&self) -> SecurityVersion {
        self.security.version()
    }

    /// Encrypts a request body in place.
    pub fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match &mut self.state {
            ClientState::Sec0(_) => Ok(()),
            ClientState::Sec1(s) => s.crypt(data),
            ClientState::Sec2(s) => s.encrypt(data),
        }
    }

    /// Decrypts a response body in place.
    pub fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match &mut self.state {
            ClientState::Sec0(_) => Ok(()),
            ClientState::Sec1(s) => s.crypt(data),
            ClientState::Sec2(s) => s.decrypt(data),
        }
    }
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("security", &self.security)
            .field("established", &self.is_established())
            .finish_non_exhaustive()
    }
}

fn decode_envelope(bytes: &[u8]) -> Result<wire::SessionData, SecurityError> {
    wire::SessionData::decode(bytes).map_err(|source| SecurityError::Malformed { what: "SessionData", source })
}

fn encode_envelope(version: SecurityVersion, proto: wire::session_data::Proto) -> Vec<u8> {
    wire::SessionData { sec_ver: version.wire() as i32, proto: Some(proto) }.encode_to_vec()
}

/// Both `sec_ver` and the payload variant must name the session's scheme, except that ESP's security 0 accepts a
/// message with no payload at all.
fn check_scheme(expected: SecurityVersion, envelope: &wire::SessionData) -> Result<(), SecurityError> {
    use wire::session_data::Proto;
    let wrong = |got| Err(SecurityError::WrongScheme { expected, got });
    if envelope.sec_ver != expected.wire() as i32 {
        return wrong(envelope.sec_ver);
    }
    match (&envelope.proto, expected) {
        (None, SecurityVersion::Sec0)
        | (Some(Proto::Sec0(_)), SecurityVersion::Sec0)
        | (Some(Proto::Sec1(_)), SecurityVersion::Sec1)
        | (Some(Proto::Sec2(_)), SecurityVersion::Sec2) => Ok(()),
        (None, _) => Err(SecurityError::UnexpectedMessage { expected: "a security payload", got: "none" }),
        (Some(Proto::Sec0(_)), _) => wrong(0),
        (Some(Proto::Sec1(_)), _) => wrong(1),
        (Some(Proto::Sec2(_)), _) => wrong(2),
    }
}
