//! Targets `session_sec0`, `session_sec1`, `session_sec2`: the device side of one security session
//! ([`DeviceSession`]) fed an arbitrary sequence of handshake messages and post-handshake bodies.
//!
//! Input: a header `profile: u8, flags: u8, rng_budget: u8, seed: u64`, then records (see [`crate::input`]):
//!
//! | op % 6 | record body | what happens |
//! |---|---|---|
//! | 0 `HANDSHAKE` | a `prov-session` message | `handle_handshake` |
//! | 1 `DECRYPT` | a request body | `decrypt` |
//! | 2 `ENCRYPT` | a response body | `encrypt` |
//! | 3 `HONEST` | byte 0 bit 0: wrong credentials | a whole handshake with a well-behaved client (security 0 and 1: the real `ClientSession`; security 2: the profile's recorded messages) |
//! | 4 `SEALED` | a plaintext | the client encrypts it, the device decrypts it, and back with the bytes reversed |
//! | 5 `RESTART` | - | a fresh device session |
//!
//! `profile` picks the golden secrets (security 1: PoP and keys; security 2: salt, verifier, nonce rule); flags
//! bit 0 queues the profile's device secrets in the random source at the start, so the recorded client messages
//! of a transcript establish the session; security 1 flags bits 1-2 pick the device's PoP (the profile's, empty,
//! none). `rng_budget` > 0 makes the random source fail after `8 * rng_budget` bytes.
//!
//! Asserted: no error blames our own API (`ApiMisuse`) or, unless the random source was told to fail, the
//! environment; a refused handshake message leaves the session unestablished; nothing decrypts or encrypts
//! before the handshake (except under security 0, which is the identity); security 1 decryption equals the
//! client's encryption of the same bytes and preserves length; security 2 adds or removes exactly the 16-byte
//! tag and agrees with the reimplemented cipher of [`crate::mirror::Gcm`] on every success and failure; an honest
//! client with the right credentials always ends established on both sides (with the recorded bytes when the
//! golden secrets are in place), and one with wrong credentials never does; what a client seals the device
//! opens unchanged, and the reverse.

use wifiprov_proto::danger;
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{Blame, ClientSecurity, ClientSession, DeviceSecurity, DeviceSession, SecurityError};

use crate::golden::golden;
use crate::input::Input;
use crate::mirror::{Gcm, Mirror};
use crate::rng::FuzzRng;

/// Record ops.
pub const HANDSHAKE: u8 = 0;
/// See the module table.
pub const DECRYPT: u8 = 1;
/// See the module table.
pub const ENCRYPT: u8 = 2;
/// See the module table.
pub const HONEST: u8 = 3;
/// See the module table.
pub const SEALED: u8 = 4;
/// See the module table.
pub const RESTART: u8 = 5;
const OPS: u8 = 6;

/// Records read per input.
pub const MAX_OPS: usize = 64;
/// Security 2 command 0s per input that reach the SRP arithmetic (honest handshakes included): each costs
/// 3072-bit exponentiations of milliseconds, so more would only slow the fuzzer down. Messages refused before
/// the arithmetic are not counted.
pub const MAX_SEC2_HANDSHAKES: usize = 2;

/// The flag that queues the profile's device secrets.
pub const FLAG_GOLDEN: u8 = 1;

/// The scheme a session target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Security 0.
    Sec0,
    /// Security 1.
    Sec1,
    /// Security 2.
    Sec2,
}

/// The header of a session input.
pub fn header(profile: u8, flags: u8, rng_budget: u8, seed: u64) -> Vec<u8> {
    let mut out = vec![profile, flags, rng_budget];
    out.extend_from_slice(&seed.to_le_bytes());
    out
}

struct Device {
    scheme: Scheme,
    profile: usize,
    security: DeviceSecurity,
    /// The PoP an honest client must use (security 1).
    pop: Vec<u8>,
}

impl Device {
    fn new(scheme: Scheme, profile: u8, flags: u8) -> Self {
        let g = golden();
        match scheme {
            Scheme::Sec0 => Self { scheme, profile: 0, security: danger::sec0(), pop: Vec::new() },
            Scheme::Sec1 => {
                let profile = usize::from(profile) % g.sec1.len();
                let pop = g.sec1[profile].pop.clone();
                match (flags >> 1) & 3 {
                    1 => Self {
                        scheme,
                        profile,
                        security: DeviceSecurity::sec1(ProofOfPossession::new(Vec::new())),
                        pop: Vec::new(),
                    },
                    2 => Self { scheme, profile, security: danger::sec1_without_pop(), pop: Vec::new() },
                    _ => Self {
                        scheme,
                        profile,
                        security: DeviceSecurity::sec1(ProofOfPossession::new(pop.clone())),
                        pop,
                    },
                }
            }
            Scheme::Sec2 => {
                let profile = usize::from(profile) % g.sec2.len();
                let p = &g.sec2[profile];
                Self { scheme, profile, security: DeviceSecurity::sec2(p.device(), p.patch), pop: Vec::new() }
            }
        }
    }

    fn golden_draws(&self) -> &'static [u8] {
        let g = golden();
        match self.scheme {
            Scheme::Sec0 => &[],
            Scheme::Sec1 => &g.sec1[self.profile].device_draws,
            Scheme::Sec2 => &g.sec2[self.profile].device_draws,
        }
    }
}

/// Checks an error the device returned for peer bytes.
pub fn check_error(error: &SecurityError, rng: &FuzzRng) {
    assert_ne!(error.blame(), Blame::ApiMisuse, "peer bytes caused an API-misuse error: {error}");
    if !rng.may_fail() {
        assert_ne!(error.blame(), Blame::Environment, "environment error without a failing random source: {error}");
    }
}

/// Runs one input against a device of `scheme`.
pub fn run(scheme: Scheme, data: &[u8]) {
    let mut input = Input::new(data);
    let (profile, flags, budget, seed) = (input.u8(), input.u8(), input.u8(), input.u64());
    let device = Device::new(scheme, profile, flags);
    let mut rng = FuzzRng::new(seed, (budget > 0).then(|| usize::from(budget) * 8));
    if flags & FLAG_GOLDEN != 0 {
        rng.queue(device.golden_draws());
    }
    let mut state = State { session: DeviceSession::new(&device.security), mirror: None, rng, sec2_handshakes: 0 };
    for _ in 0..MAX_OPS {
        let Some((op, body)) = input.record() else { break };
        match op % OPS {
            HANDSHAKE => state.handshake(&device, body),
            DECRYPT => state.decrypt(&device, body),
            ENCRYPT => state.encrypt(&device, body),
            HONEST => state.honest(&device, body, seed),
            SEALED => state.sealed(&device, body),
            _ => {
                state.session = DeviceSession::new(&device.security);
                state.mirror = None;
            }
        }
    }
}

struct State {
    session: DeviceSession,
    mirror: Option<Mirror>,
    rng: FuzzRng,
    sec2_handshakes: usize,
}

impl State {
    /// Whether a security 2 handshake may still run in this input.
    fn sec2_allowance(&self, device: &Device) -> bool {
        device.scheme != Scheme::Sec2 || self.sec2_handshakes < MAX_SEC2_HANDSHAKES
    }

    /// Counts a message that went through the SRP arithmetic: one the session answered and now waits for the
    /// proof after.
    fn count_costly(&mut self, device: &Device, answered: bool) {
        if device.scheme == Scheme::Sec2 && answered && self.session.awaits_proof() {
            self.sec2_handshakes += 1;
        }
    }

    fn handshake(&mut self, device: &Device, body: &[u8]) {
        if !self.sec2_allowance(device) {
            return;
        }
        let result = self.session.handle_handshake(body, &mut self.rng);
        self.count_costly(device, result.is_ok());
        if device.scheme != Scheme::Sec0 {
            // The device's keys changed (or were dropped): the client's copy no longer matches.
            self.mirror = None;
        }
        match result {
            Err(e) => {
                check_error(&e, &self.rng);
                assert!(!self.session.is_established(), "a refused handshake message left the session established");
            }
            Ok(response) => {
                assert!(response.len() <= 1024, "handshake answer of {} bytes", response.len());
                if device.scheme == Scheme::Sec0 {
                    assert!(self.session.is_established());
                }
            }
        }
    }

    fn decrypt(&mut self, device: &Device, body: &[u8]) {
        let mut data = body.to_vec();
        let result = self.session.decrypt(&mut data);
        match device.scheme {
            Scheme::Sec0 => {
                assert!(result.is_ok());
                assert_eq!(data, body, "security 0 changed a body");
            }
            _ if !self.session.is_established() => {
                assert!(matches!(result, Err(SecurityError::NotEstablished)), "decrypted before the handshake");
            }
            Scheme::Sec1 => {
                assert!(result.is_ok(), "an established security 1 session failed to decrypt");
                assert_eq!(data.len(), body.len());
                if let Some(mirror) = &mut self.mirror {
                    let mut expected = body.to_vec();
                    mirror.encrypt(&mut expected).expect("security 1 client encrypts");
                    assert_eq!(data, expected, "device and client keystreams differ");
                }
            }
            Scheme::Sec2 => {
                match &result {
                    Ok(()) => assert_eq!(data.len() + 16, body.len(), "decryption did not remove exactly the tag"),
                    Err(e) => check_error(e, &self.rng),
                }
                if let Some(mirror) = &mut self.mirror {
                    let mut expected = body.to_vec();
                    let agreed = mirror.decrypt(&mut expected);
                    assert_eq!(result.is_ok(), agreed.is_ok(), "device and reference cipher disagree on a body");
                    if result.is_ok() {
                        assert_eq!(data, expected);
                    }
                }
            }
        }
    }

    fn encrypt(&mut self, device: &Device, body: &[u8]) {
        let mut data = body.to_vec();
        let result = self.session.encrypt(&mut data);
        match device.scheme {
            Scheme::Sec0 => {
                assert!(result.is_ok());
                assert_eq!(data, body, "security 0 changed a body");
            }
            _ if !self.session.is_established() => {
                assert!(matches!(result, Err(SecurityError::NotEstablished)), "encrypted before the handshake");
            }
            Scheme::Sec1 | Scheme::Sec2 => {
                match &result {
                    Ok(()) => {
                        let tag = if device.scheme == Scheme::Sec2 { 16 } else { 0 };
                        assert_eq!(data.len(), body.len() + tag, "encryption changed the length wrongly");
                    }
                    Err(e) => {
                        check_error(e, &self.rng);
                        assert!(
                            matches!(e, SecurityError::NonceExhausted),
                            "an established session failed to encrypt: {e}"
                        );
                    }
                }
                if let (Ok(()), Some(mirror)) = (&result, &mut self.mirror) {
                    mirror.decrypt(&mut data).expect("the client opens what the device sealed");
                    assert_eq!(data, body, "the client read something else than the device sent");
                }
            }
        }
    }

    fn honest(&mut self, device: &Device, body: &[u8], seed: u64) {
        if !self.sec2_allowance(device) {
            return;
        }
        let wrong = body.first().is_some_and(|b| b & 1 != 0);
        self.mirror = None;
        match device.scheme {
            Scheme::Sec0 | Scheme::Sec1 => self.honest_client(device, body, wrong, seed),
            Scheme::Sec2 => self.honest_replay(device, wrong),
        }
    }

    /// A real client against the device.
    fn honest_client(&mut self, device: &Device, body: &[u8], wrong: bool, seed: u64) {
        let g = golden();
        let security = match device.scheme {
            Scheme::Sec0 => ClientSecurity::sec0(),
            _ if wrong => ClientSecurity::sec1(ProofOfPossession::new([b"wrong".as_slice(), body].concat())),
            _ => ClientSecurity::sec1(ProofOfPossession::new(device.pop.clone())),
        };
        let wrong = wrong && device.scheme != Scheme::Sec0;
        let mut client = ClientSession::new(security);
        let mut client_rng = FuzzRng::new(seed ^ 0x5eed, None);
        // With both sides' recorded secrets in place, the exchange must be the recorded one byte for byte.
        let recorded = device.scheme == Scheme::Sec1
            && !self.rng.may_fail()
            && self.rng.queued() == device.golden_draws().len()
            && device.pop == g.sec1[device.profile].pop;
        if recorded {
            client_rng.queue(&g.sec1[device.profile].client_draws);
        }
        let mut request = client.start(&mut client_rng).expect("the client starts");
        let mut step = 0;
        let device_refused = loop {
            if recorded && !wrong {
                assert_eq!(request, g.sec1[device.profile].handshake[step].request, "client message {step} differs");
            }
            match self.session.handle_handshake(&request, &mut self.rng) {
                Err(e) => {
                    check_error(&e, &self.rng);
                    assert!(!self.session.is_established());
                    break true;
                }
                Ok(response) => {
                    if recorded && !wrong {
                        assert_eq!(Some(&response), g.sec1[device.profile].handshake[step].response.as_ref());
                    }
                    step += 1;
                    match client.handle_response(&response, &mut client_rng) {
                        Ok(Some(next)) => request = next,
                        Ok(None) => break false,
                        Err(e) => panic!("the client refused an answer of the device: {e}"),
                    }
                }
            }
        };
        if wrong {
            assert!(device_refused, "the device accepted a wrong proof of possession");
            assert!(!self.session.is_established() && !client.is_established());
        } else if !self.rng.may_fail() {
            assert!(
                !device_refused && self.session.is_established() && client.is_established(),
                "honest handshake failed"
            );
        }
        if self.session.is_established() && client.is_established() {
            self.mirror = Some(Mirror::Session(Box::new(client)));
        }
    }

    /// Security 2: the profile's recorded client messages, with the device's recorded secrets queued first.
    fn honest_replay(&mut self, device: &Device, wrong: bool) {
        let p = &golden().sec2[device.profile];
        self.rng.script(&p.device_draws);
        let exact = !self.rng.may_fail();
        let first = self.session.handle_handshake(&p.handshake[0].request, &mut self.rng);
        self.count_costly(device, first.is_ok());
        match first {
            Ok(response) => {
                if exact {
                    assert_eq!(Some(&response), p.handshake[0].response.as_ref(), "answer to the recorded command 0");
                }
            }
            Err(e) => {
                check_error(&e, &self.rng);
                assert!(!exact, "the recorded command 0 was refused: {e}");
                return;
            }
        }
        let mut cmd1 = p.handshake[1].request.clone();
        if wrong {
            // The proof is the last field: its last byte.
            if let Some(last) = cmd1.last_mut() {
                *last ^= 1;
            }
        }
        match self.session.handle_handshake(&cmd1, &mut self.rng) {
            Ok(response) => {
                assert!(!wrong, "the device accepted a wrong SRP proof");
                if exact {
                    assert_eq!(Some(&response), p.handshake[1].response.as_ref(), "answer to the recorded command 1");
                }
                assert!(self.session.is_established());
                self.mirror = Gcm::new(&p.aes_key, p.patch, &p.nonce).map(|g| Mirror::Gcm(Box::new(g)));
            }
            Err(e) => {
                check_error(&e, &self.rng);
                assert!(wrong || !exact, "the recorded command 1 was refused: {e}");
                if wrong {
                    assert!(matches!(e, SecurityError::ClientProofMismatch), "wrong proof refused as {e}");
                }
                assert!(!self.session.is_established());
            }
        }
    }

    fn sealed(&mut self, device: &Device, body: &[u8]) {
        let Some(mirror) = &mut self.mirror else {
            return self.decrypt(device, body);
        };
        let mut data = body.to_vec();
        if mirror.encrypt(&mut data).is_err() {
            // Security 2 nonce counter exhausted on both sides.
            return;
        }
        if let Err(e) = self.session.decrypt(&mut data) {
            panic!("the device refused what the client sealed: {e}");
        }
        assert_eq!(data, body, "the device read something else than the client sent");
        let reply: Vec<u8> = body.iter().rev().copied().collect();
        let mut data = reply.clone();
        match self.session.encrypt(&mut data) {
            Ok(()) => {
                mirror.decrypt(&mut data).expect("the client opens the device's answer");
                assert_eq!(data, reply);
            }
            Err(e) => assert!(matches!(e, SecurityError::NonceExhausted), "{e}"),
        }
    }
}
