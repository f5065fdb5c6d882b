//! Security 2: SRP-6a (RFC 5054 3072-bit group, SHA-512, ESP's exact hashing), then AES-256-GCM.
//!
//! Device: `ExpectCmd0` → `ExpectCmd1` → `Established`. Client: `Idle` → `ExpectResp0` → `ExpectResp1` →
//! `Established`. The GCM key exists only in `Established`.

use core::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::rng::{SecureRandom, random_array};
use crate::secret::Password;
use crate::wire::{self, sec2_payload::Payload, session_data::Proto};

use super::cipher::{GcmCipher, Sec2Patch};
use super::error::{SecurityError, check_len};
use super::srp::{self, SrpError, SrpServer};

const PUBKEY_LEN: usize = 384;
const PROOF_LEN: usize = 64;
const MAX_USERNAME_LEN: usize = u16::MAX as usize;
const SECRET_LEN: usize = 32;

/// The device's security 2 credentials: a salt and an SRP verifier, as made by `esp_prov --sec2_gen_cred` or
/// [`generate_salt_verifier`]. The password itself is never stored on the device.
///
/// Construction precomputes tables for the verifier, so build one and share it (it is held in an `Arc`).
pub struct Sec2Verifier(SrpServer);

impl Sec2Verifier {
    /// Checks the verifier (non-zero, below N) and precomputes what every handshake needs, including the
    /// process-wide table for g, so the first client does not wait for it.
    pub fn new(salt: &[u8], verifier: &[u8]) -> Result<Self, SrpError> {
        srp::precompute();
        Ok(Self(SrpServer::new(salt, verifier)?))
    }

    /// The salt sent to clients.
    pub fn salt(&self) -> &[u8] {
        self.0.salt()
    }
}

impl fmt::Debug for Sec2Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sec2Verifier").field("salt_len", &self.salt().len()).finish_non_exhaustive()
    }
}

/// A generated salt and verifier pair.
#[derive(Clone, PartialEq, Eq)]
pub struct SaltVerifier {
    /// The salt; its first byte is never zero (esp_prov strips leading zeros from salts and would fail).
    pub salt: Vec<u8>,
    /// `I2B(g^x mod N)`. Not a password, but it allows an offline dictionary attack, so keep it private.
    pub verifier: Vec<u8>,
}

impl fmt::Debug for SaltVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaltVerifier").field("salt", &HexFmt(&self.salt)).field("verifier", &"<redacted>").finish()
    }
}

struct HexFmt<'a>(&'a [u8]);

impl fmt::Debug for HexFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Generates a salt of `salt_len` bytes and the verifier for `username` and `password`, like
/// `esp_prov --sec2_gen_cred`, but never with a zero first salt byte (that breaks esp_prov's login).
pub fn generate_salt_verifier(
    username: &[u8],
    password: &Password,
    salt_len: usize,
    rng: &mut dyn SecureRandom,
) -> Result<SaltVerifier, SecurityError> {
    check_len("salt", "1..=64", salt_len, (1..=64).contains(&salt_len))?;
    check_username(username)?;
    let mut salt = vec![0u8; salt_len];
    rng.fill(&mut salt)?;
    let mut first = [salt.first().copied().unwrap_or(0)];
    // Redraw rather than set a bit, to keep the first byte uniform over 1..=255. A source that keeps returning
    // zero is broken, not unlucky.
    for _ in 0..64 {
        if first[0] != 0 {
            break;
        }
        rng.fill(&mut first)?;
    }
    match (first[0], salt.first_mut()) {
        (0, _) | (_, None) => return Err(SecurityError::Random(crate::rng::RandomUnavailable)),
        (byte, Some(slot)) => *slot = byte,
    }
    let verifier = srp::compute_verifier(username, password.expose_secret(), &salt);
    Ok(SaltVerifier { salt, verifier })
}

fn check_username(username: &[u8]) -> Result<(), SecurityError> {
    check_len("client_username", "1..=65535", username.len(), (1..=MAX_USERNAME_LEN).contains(&username.len()))
}

#[derive(Default)]
pub(crate) enum DeviceState {
    #[default]
    ExpectCmd0,
    ExpectCmd1(Box<DeviceExpectCmd1>),
    Established(Box<GcmCipher>),
}

pub(crate) struct DeviceExpectCmd1 {
    username: Vec<u8>,
    client_pub: Vec<u8>,
    device_pub: Vec<u8>,
    key: Zeroizing<[u8; 64]>,
}

impl DeviceState {
    pub(crate) fn handle(
        &mut self,
        request: wire::SessionData,
        verifier: &Sec2Verifier,
        patch: Sec2Patch,
        rng: &mut dyn SecureRandom,
    ) -> Result<Proto, SecurityError> {
        let Some(Proto::Sec2(payload)) = request.proto else {
            return Err(SecurityError::ApiMisuse("envelope checked before dispatch"));
        };
        let msg = wire::Sec2MsgType::try_from(payload.msg).ok();
        match (msg, payload.payload) {
            // A first message in any state restarts the session.
            (Some(wire::Sec2MsgType::S2SessionCommand0), Some(Payload::Sc0(cmd0))) => {
                let (next, response) = handle_cmd0(cmd0, &verifier.0, rng)?;
                *self = Self::ExpectCmd1(Box::new(next));
                Ok(response)
            }
            (Some(wire::Sec2MsgType::S2SessionCommand1), Some(Payload::Sc1(cmd1))) => match std::mem::take(self) {
                Self::ExpectCmd1(state) => {
                    let (cipher, response) = handle_cmd1(*state, &cmd1, &verifier.0, patch, rng)?;
                    *self = Self::Established(Box::new(cipher));
                    Ok(response)
                }
                other => {
                    *self = other;
                    Err(SecurityError::UnexpectedMessage { expected: "S2Session_Command0", got: "S2Session_Command1" })
                }
            },
            (msg, payload) => Err(SecurityError::UnexpectedMessage {
                expected: "S2Session_Command0 with sc0, or S2Session_Command1 with sc1",
                got: describe(msg, payload.as_ref()),
            }),
        }
    }

    pub(crate) fn awaits_proof(&self) -> bool {
        matches!(self, Self::ExpectCmd1(_))
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self, Self::Established(_))
    }

    pub(crate) fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match self {
            Self::Established(cipher) => cipher.encrypt(data),
            _ => Err(SecurityError::NotEstablished),
        }
    }

    pub(crate) fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match self {
            Self::Established(cipher) => cipher.decrypt(data),
            _ => Err(SecurityError::NotEstablished),
        }
    }
}

fn handle_cmd0(
    cmd0: wire::S2SessionCmd0,
    server: &SrpServer,
    rng: &mut dyn SecureRandom,
) -> Result<(DeviceExpectCmd1, Proto), SecurityError> {
    check_username(&cmd0.client_username)?;
    // ESP's device takes only a 384-byte A, but Espressif's own Python clients (esp_prov, esp-rainmaker-cli) send
    // A minimal, 383 bytes or fewer once in 256 sessions, and hash it so in M1: an ESP device refuses those
    // sessions. We take any length up to 384, pad it inside u and hash it as received, as those clients do.
    let len = cmd0.client_pubkey.len();
    check_len("client_pubkey", "1..=384", len, (1..=PUBKEY_LEN).contains(&len))?;
    let b = random_array::<SECRET_LEN>(rng)?;
    let device_pub = server.public_ephemeral(&b);
    let key = server.session_key(&cmd0.client_pubkey, &device_pub, &b).map_err(|e| match e {
        SrpError::ZeroPublicKey => SecurityError::InvalidPublicKey("srp client"),
        other => SecurityError::Srp(other),
    })?;
    let response = Proto::Sec2(wire::Sec2Payload {
        msg: wire::Sec2MsgType::S2SessionResponse0 as i32,
        payload: Some(Payload::Sr0(wire::S2SessionResp0 {
            status: wire::Status::Success as i32,
            device_pubkey: device_pub.clone(),
            device_salt: server.salt().to_vec(),
        })),
    });
    let state = DeviceExpectCmd1 { username: cmd0.client_username, client_pub: cmd0.client_pubkey, device_pub, key };
    Ok((state, response))
}

fn handle_cmd1(
    state: DeviceExpectCmd1,
    cmd1: &wire::S2SessionCmd1,
    server: &SrpServer,
    patch: Sec2Patch,
    rng: &mut dyn SecureRandom,
) -> Result<(GcmCipher, Proto), SecurityError> {
    let proof: &[u8; PROOF_LEN] = cmd1.client_proof.as_slice().try_into().map_err(|_| {
        SecurityError::InvalidLength { field: "client_proof", expected: "64", got: cmd1.client_proof.len() }
    })?;
    let expected = srp::client_proof(&state.username, server.salt(), &state.client_pub, &state.device_pub, &state.key);
    if !srp::proofs_match(&expected, proof) {
        return Err(SecurityError::ClientProofMismatch);
    }
    let device_proof = srp::server_proof(&state.client_pub, proof, &state.key);
    let nonce = match patch {
        Sec2Patch::Counter => {
            let mut nonce = random_array::<8>(rng)?.to_vec();
            nonce.extend_from_slice(&1u32.to_be_bytes());
            nonce
        }
        Sec2Patch::Legacy => random_array::<16>(rng)?.to_vec(),
    };
    let cipher = GcmCipher::new(&aes_key(&state.key), patch, &nonce)?;
    let response = Proto::Sec2(wire::Sec2Payload {
        msg: wire::Sec2MsgType::S2SessionResponse1 as i32,
        payload: Some(Payload::Sr1(wire::S2SessionResp1 {
            status: wire::Status::Success as i32,
            device_proof: device_proof.to_vec(),
            device_nonce: nonce,
        })),
    });
    Ok((cipher, response))
}

/// The AES-256-GCM key is the first half of K = H(S).
fn aes_key(k: &[u8; 64]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    key.iter_mut().zip(k.iter()).for_each(|(d, s)| *d = *s);
    key
}

#[derive(Default)]
pub(crate) enum ClientState {
    #[default]
    Idle,
    ExpectResp0(Box<ClientExpectResp0>),
    ExpectResp1(Box<ClientExpectResp1>),
    Established(Box<GcmCipher>),
}

pub(crate) struct ClientExpectResp0 {
    a: Zeroizing<[u8; SECRET_LEN]>,
    client_pub: [u8; PUBKEY_LEN],
}

pub(crate) struct ClientExpectResp1 {
    client_pub: [u8; PUBKEY_LEN],
    proof: [u8; PROOF_LEN],
    key: Zeroizing<[u8; 64]>,
}

/// How often to draw a new `a` before giving up; each draw has a 1/256 chance of an A with a zero top byte.
const MAX_REROLLS: usize = 32;

impl ClientState {
    pub(crate) fn start(&mut self, username: &[u8], rng: &mut dyn SecureRandom) -> Result<Proto, SecurityError> {
        check_username(username)?;
        // A is sent padded to 384 bytes, and ESP devices hash it as received. Some peers (esp_prov-based
        // emulators, the Android library) hash the minimal form instead, so draw again until both agree.
        let mut chosen = None;
        for _ in 0..MAX_REROLLS {
            let mut a = random_array::<SECRET_LEN>(rng)?;
            // esp_prov sets the top bit, so the secret always has the full 256 bits.
            if let Some(top) = a.first_mut() {
                *top |= 0x80;
            }
            let client_pub = srp::client_public_ephemeral(&a);
            if client_pub.first() != Some(&0) {
                chosen = Some((a, client_pub));
                break;
            }
        }
        let (a, client_pub) = chosen.ok_or(SecurityError::Random(crate::rng::RandomUnavailable))?;
        *self = Self::ExpectResp0(Box::new(ClientExpectResp0 { a, client_pub }));
        Ok(Proto::Sec2(wire::Sec2Payload {
            msg: wire::Sec2MsgType::S2SessionCommand0 as i32,
            payload: Some(Payload::Sc0(wire::S2SessionCmd0 {
                client_username: username.to_vec(),
                client_pubkey: client_pub.to_vec(),
            })),
        }))
    }

    pub(crate) fn handle(
        &mut self,
        response: wire::SessionData,
        username: &[u8],
        password: &Password,
        patch: Sec2Patch,
    ) -> Result<Option<Proto>, SecurityError> {
        let Some(Proto::Sec2(payload)) = response.proto else {
            return Err(SecurityError::ApiMisuse("envelope checked before dispatch"));
        };
        let msg = wire::Sec2MsgType::try_from(payload.msg).ok();
        match (std::mem::take(self), msg, payload.payload) {
            (Self::ExpectResp0(state), Some(wire::Sec2MsgType::S2SessionResponse0), Some(Payload::Sr0(sr0))) => {
                peer_status(sr0.status)?;
                let device_pub = sr0.device_pubkey;
                check_len("device_pubkey", "1..=384", device_pub.len(), (1..=PUBKEY_LEN).contains(&device_pub.len()))?;
                check_len("device_salt", "at least 1", sr0.device_salt.len(), !sr0.device_salt.is_empty())?;
                let x = srp::client_x(username, password.expose_secret(), &sr0.device_salt);
                let key =
                    srp::client_session_key(&state.a, &state.client_pub, &device_pub, &x).map_err(|e| match e {
                        SrpError::ZeroPublicKey => SecurityError::InvalidPublicKey("srp device"),
                        other => SecurityError::Srp(other),
                    })?;
                let proof = srp::client_proof(username, &sr0.device_salt, &state.client_pub, &device_pub, &key);
                *self = Self::ExpectResp1(Box::new(ClientExpectResp1 { client_pub: state.client_pub, proof, key }));
                Ok(Some(Proto::Sec2(wire::Sec2Payload {
                    msg: wire::Sec2MsgType::S2SessionCommand1 as i32,
                    payload: Some(Payload::Sc1(wire::S2SessionCmd1 { client_proof: proof.to_vec() })),
                })))
            }
            (Self::ExpectResp1(mut state), Some(wire::Sec2MsgType::S2SessionResponse1), Some(Payload::Sr1(sr1))) => {
                peer_status(sr1.status)?;
                let expected = srp::server_proof(&state.client_pub, &state.proof, &state.key);
                if !srp::proofs_match(&expected, &sr1.device_proof) {
                    return Err(SecurityError::DeviceProofMismatch);
                }
                let cipher = GcmCipher::new(&aes_key(&state.key), patch, &sr1.device_nonce)?;
                state.proof.zeroize();
                *self = Self::Established(Box::new(cipher));
                Ok(None)
            }
            (state, msg, payload) => {
                let expected = match state {
                    Self::ExpectResp0(_) => "S2Session_Response0 with sr0",
                    Self::ExpectResp1(_) => "S2Session_Response1 with sr1",
                    Self::Idle | Self::Established(_) => "no response (nothing was sent)",
                };
                *self = state;
                Err(SecurityError::UnexpectedMessage { expected, got: describe(msg, payload.as_ref()) })
            }
        }
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self, Self::Established(_))
    }

    pub(crate) fn encrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match self {
            Self::Established(cipher) => cipher.encrypt(data),
            _ => Err(SecurityError::NotEstablished),
        }
    }

    pub(crate) fn decrypt(&mut self, data: &mut Vec<u8>) -> Result<(), SecurityError> {
        match self {
            Self::Established(cipher) => cipher.decrypt(data),
            _ => Err(SecurityError::NotEstablished),
        }
    }
}

fn peer_status(status: i32) -> Result<(), SecurityError> {
    if status == wire::Status::Success as i32 { Ok(()) } else { Err(SecurityError::PeerStatus(status)) }
}

fn describe(msg: Option<wire::Sec2MsgType>, payload: Option<&Payload>) -> &'static str {
    match (msg, payload) {
        (None, _) => "unknown message type",
        (Some(_), None) => "message without payload",
        (Some(wire::Sec2MsgType::S2SessionCommand0), Some(_)) => "S2Session_Command0 with a mismatched payload",
        (Some(wire::Sec2MsgType::S2SessionCommand1), Some(_)) => "S2Session_Command1 with a mismatched payload",
        (Some(wire::Sec2MsgType::S2SessionResponse0), _) => "S2Session_Response0",
        (Some(wire::Sec2MsgType::S2SessionResponse1), _) => "S2Session_Response1",
    }
}
