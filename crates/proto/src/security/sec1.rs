//! Security 1: X25519 key agreement, the session key mixed with SHA-256 of the proof of possession, then one
//! AES-256-CTR keystream for the rest of the session.
//!
//! Device: `ExpectCmd0` → `ExpectCmd1` → `Established`. Client: `Idle` → `ExpectResp0` → `ExpectResp1` →
//! `Established`. The keystream exists only from the moment both keys are known.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::rng::{SecureRandom, random_array};
use crate::secret::ProofOfPossession;
use crate::wire::{self, sec1_payload::Payload, session_data::Proto};

use super::cipher::CtrStream;
use super::error::{SecurityError, check_len};

const KEY_LEN: usize = 32;
const RANDOM_LEN: usize = 16;

#[derive(Default)]
pub(crate) enum DeviceState {
    #[default]
    ExpectCmd0,
    ExpectCmd1(Box<DeviceExpectCmd1>),
    Established(Box<CtrStream>),
}

pub(crate) struct DeviceExpectCmd1 {
    stream: CtrStream,
    device_pub: [u8; KEY_LEN],
    client_pub: [u8; KEY_LEN],
}

impl DeviceState {
    pub(crate) fn handle(
        &mut self,
        request: wire::SessionData,
        pop: Option<&ProofOfPossession>,
        rng: &mut dyn SecureRandom,
    ) -> Result<Proto, SecurityError> {
        let Some(Proto::Sec1(payload)) = request.proto else {
            return Err(SecurityError::ApiMisuse("envelope checked before dispatch"));
        };
        let msg = wire::Sec1MsgType::try_from(payload.msg).ok();
        match (msg, payload.payload) {
            // A first message in any state restarts the session: the old keys are dropped with the old state.
            (Some(wire::Sec1MsgType::SessionCommand0), Some(Payload::Sc0(cmd0))) => {
                let (next, response) = handle_cmd0(&cmd0, pop, rng)?;
                *self = Self::ExpectCmd1(Box::new(next));
                Ok(response)
            }
            (Some(wire::Sec1MsgType::SessionCommand1), Some(Payload::Sc1(cmd1))) => match std::mem::take(self) {
                Self::ExpectCmd1(state) => {
                    let (stream, response) = handle_cmd1(*state, &cmd1)?;
                    *self = Self::Established(Box::new(stream));
                    Ok(response)
                }
                other => {
                    *self = other;
                    Err(SecurityError::UnexpectedMessage { expected: "Session_Command0", got: "Session_Command1" })
                }
            },
            (msg, payload) => Err(SecurityError::UnexpectedMessage {
                expected: "Session_Command0 with sc0, or Session_Command1 with sc1",
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

    pub(crate) fn crypt(&mut self, data: &mut [u8]) -> Result<(), SecurityError> {
        match self {
            Self::Established(stream) => {
                stream.apply(data);
                Ok(())
            }
            _ => Err(SecurityError::NotEstablished),
        }
    }
}

fn handle_cmd0(
    cmd0: &wire::SessionCmd0,
    pop: Option<&ProofOfPossession>,
    rng: &mut dyn SecureRandom,
) -> Result<(DeviceExpectCmd1, Proto), SecurityError> {
    let client_pub = peer_key("client_pubkey", &cmd0.client_pubkey)?;
    let device_secret = StaticSecret::from(*random_array::<KEY_LEN>(rng)?);
    let device_pub = PublicKey::from(&device_secret).to_bytes();
    let device_random = random_array::<RANDOM_LEN>(rng)?;
    let key = session_key(&device_secret, &client_pub, pop)?;
    let response = Proto::Sec1(wire::Sec1Payload {
        msg: wire::Sec1MsgType::SessionResponse0 as i32,
        payload: Some(Payload::Sr0(wire::SessionResp0 {
            status: wire::Status::Success as i32,
            device_pubkey: device_pub.to_vec(),
            device_random: device_random.to_vec(),
        })),
    });
    let stream = CtrStream::new(&key, &device_random);
    Ok((DeviceExpectCmd1 { stream, device_pub, client_pub }, response))
}

fn handle_cmd1(mut state: DeviceExpectCmd1, cmd1: &wire::SessionCmd1) -> Result<(CtrStream, Proto), SecurityError> {
    let verify = &cmd1.client_verify_data;
    check_len("client_verify_data", "32", verify.len(), verify.len() == KEY_LEN)?;
    let mut decrypted = Zeroizing::new(verify.clone());
    state.stream.apply(&mut decrypted);
    if !bool::from(decrypted.as_slice().ct_eq(&state.device_pub)) {
        return Err(SecurityError::PopMismatch);
    }
    let mut device_verify = state.client_pub.to_vec();
    state.stream.apply(&mut device_verify);
    let response = Proto::Sec1(wire::Sec1Payload {
        msg: wire::Sec1MsgType::SessionResponse1 as i32,
        payload: Some(Payload::Sr1(wire::SessionResp1 {
            status: wire::Status::Success as i32,
            device_verify_data: device_verify,
        })),
    });
    Ok((state.stream, response))
}

#[derive(Default)]
pub(crate) enum ClientState {
    #[default]
    Idle,
    ExpectResp0(Box<ClientExpectResp0>),
    ExpectResp1(Box<ClientExpectResp1>),
    Established(Box<CtrStream>),
}

pub(crate) struct ClientExpectResp0 {
    secret: StaticSecret,
    client_pub: [u8; KEY_LEN],
}

pub(crate) struct ClientExpectResp1 {
    stream: CtrStream,
    client_pub: [u8; KEY_LEN],
}

impl ClientState {
    pub(crate) fn start(&mut self, rng: &mut dyn SecureRandom) -> Result<Proto, SecurityError> {
        let secret = StaticSecret::from(*random_array::<KEY_LEN>(rng)?);
        let client_pub = PublicKey::from(&secret).to_bytes();
        *self = Self::ExpectResp0(Box::new(ClientExpectResp0 { secret, client_pub }));
        Ok(Proto::Sec1(wire::Sec1Payload {
            msg: wire::Sec1MsgType::SessionCommand0 as i32,
            payload: Some(Payload::Sc0(wire::SessionCmd0 { client_pubkey: client_pub.to_vec() })),
        }))
    }

    pub(crate) fn handle(
        &mut self,
        response: wire::SessionData,
        pop: &ProofOfPossession,
    ) -> Result<Option<Proto>, SecurityError> {
        let Some(Proto::Sec1(payload)) = response.proto else {
            return Err(SecurityError::ApiMisuse("envelope checked before dispatch"));
        };
        let msg = wire::Sec1MsgType::try_from(payload.msg).ok();
        match (std::mem::take(self), msg, payload.payload) {
            (Self::ExpectResp0(state), Some(wire::Sec1MsgType::SessionResponse0), Some(Payload::Sr0(sr0))) => {
                peer_status(sr0.status)?;
                let device_pub = peer_key("device_pubkey", &sr0.device_pubkey)?;
                let device_random: [u8; RANDOM_LEN] =
                    sr0.device_random.as_slice().try_into().map_err(|_| SecurityError::InvalidLength {
                        field: "device_random",
                        expected: "16",
                        got: sr0.device_random.len(),
                    })?;
                let key = session_key(&state.secret, &device_pub, Some(pop))?;
                let mut stream = CtrStream::new(&key, &device_random);
                let mut verify = device_pub.to_vec();
                stream.apply(&mut verify);
                *self = Self::ExpectResp1(Box::new(ClientExpectResp1 { stream, client_pub: state.client_pub }));
                Ok(Some(Proto::Sec1(wire::Sec1Payload {
                    msg: wire::Sec1MsgType::SessionCommand1 as i32,
                    payload: Some(Payload::Sc1(wire::SessionCmd1 { client_verify_data: verify })),
                })))
            }
            (Self::ExpectResp1(mut state), Some(wire::Sec1MsgType::SessionResponse1), Some(Payload::Sr1(sr1))) => {
                peer_status(sr1.status)?;
                let mut verify = sr1.device_verify_data;
                check_len("device_verify_data", "32", verify.len(), verify.len() == KEY_LEN)?;
                state.stream.apply(&mut verify);
                if !bool::from(verify.as_slice().ct_eq(&state.client_pub)) {
                    return Err(SecurityError::DeviceProofMismatch);
                }
                *self = Self::Established(Box::new(state.stream));
                Ok(None)
            }
            (state, msg, payload) => {
                let expected = match state {
                    Self::ExpectResp0(_) => "Session_Response0 with sr0",
                    Self::ExpectResp1(_) => "Session_Response1 with sr1",
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

    pub(crate) fn crypt(&mut self, data: &mut [u8]) -> Result<(), SecurityError> {
        match self {
            Self::Established(stream) => {
                stream.apply(data);
                Ok(())
            }
            _ => Err(SecurityError::NotEstablished),
        }
    }
}

fn peer_key(field: &'static str, bytes: &[u8]) -> Result<[u8; KEY_LEN], SecurityError> {
    bytes.try_into().map_err(|_| SecurityError::InvalidLength { field, expected: "32", got: bytes.len() })
}

fn peer_status(status: i32) -> Result<(), SecurityError> {
    if status == wire::Status::Success as i32 { Ok(()) } else { Err(SecurityError::PeerStatus(status)) }
}

/// `X25519(ours, theirs)`, XORed with SHA-256(PoP) unless the PoP is absent or empty (ESP skips the mixing for
/// both). A low-order peer key would make the shared secret predictable, so it is refused.
fn session_key(
    ours: &StaticSecret,
    theirs: &[u8; KEY_LEN],
    pop: Option<&ProofOfPossession>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, SecurityError> {
    let shared = ours.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(SecurityError::InvalidPublicKey("x25519"));
    }
    let mut key = Zeroizing::new(shared.to_bytes());
    if let Some(pop) = pop.filter(|p| !p.is_empty()) {
        let digest = Sha256::digest(pop.expose_secret());
        for (k, d) in key.iter_mut().zip(digest.iter()) {
            *k ^= d;
        }
    }
    Ok(key)
}

fn describe(msg: Option<wire::Sec1MsgType>, payload: Option<&Payload>) -> &'static str {
    match (msg, payload) {
        (None, _) => "unknown message type",
        (Some(_), None) => "message without payload",
        (Some(wire::Sec1MsgType::SessionCommand0), Some(_)) => "Session_Command0 with a mismatched payload",
        (Some(wire::Sec1MsgType::SessionCommand1), Some(_)) => "Session_Command1 with a mismatched payload",
        (Some(wire::Sec1MsgType::SessionResponse0), _) => "Session_Response0",
        (Some(wire::Sec1MsgType::SessionResponse1), _) => "Session_Response1",
    }
}
