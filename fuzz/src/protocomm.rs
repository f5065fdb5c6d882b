//! Target `protocomm`: the endpoint and session table ([`Protocomm`]) fed arbitrary requests from several peers,
//! with requests begun and finished out of order, cancelled, sessions attached, detached, opened, closed and
//! left to expire, and honest clients mixed in.
//!
//! Input: a header `scheme, max_sessions, max_handshakes, idle_secs, handshake_secs, rng_budget: u8, seed: u64`,
//! then records:
//!
//! | op % 10 | record body | what happens |
//! |---|---|---|
//! | 0 `BEGIN` | `peer, claim, endpoint`, body | `begin`; the step is kept pending (at most 4) |
//! | 1 `FINISH` | `index` | a pending step runs (handshake or call) and its session is checked in |
//! | 2 `CANCEL` | `index` | a pending step is dropped and its session closed, as a cancelled transport task does |
//! | 3 `HANDLE` | `peer, claim, endpoint`, body | `handle`, the whole request at once |
//! | 4 `HONEST` | `peer, wrong` | an honest client's whole handshake through `handle` |
//! | 5 `SEALED` | `session, endpoint`, plaintext | that client encrypts a request, the device answers, the client decrypts |
//! | 6 `ATTACH` | `session, detach` | `attach` or `detach` |
//! | 7 `ADVANCE` | `u16` | the clock moves on by that many tenths of a second |
//! | 8 `CLOSE` | `session` | `close_session` |
//! | 9 `OPEN` | `session, peer` | `open_session` (bit 7 of `session`: a fresh id) |
//!
//! `scheme` % 4: security 0, 1 with a PoP, 1 without, 2 (the compact vectors' salt and verifier; at most three
//! handshake steps per input, as each may cost milliseconds); `scheme / 4 % 8`: the guessing limit's free failures
//! (0: the default 5, `n`: `n - 1`), so that inputs reach the waits and the one-proof-at-a-time rule quickly. `claim` 0 is none, otherwise
//! the `claim - 1`th session id seen so far. Endpoints: `proto-ver`, `prov-session`, `prov-config`, `prov-scan`,
//! `prov-ctrl`, `prov-networks`, `custom-data` (echoes the request reversed), `reserved` (created, no handler),
//! and a name that does not exist. The four provisioning handlers decode with [`crate::messages`]'s checks.
//!
//! Asserted after every step: the table holds only sessions the harness was told about, at most `max_sessions`
//! of them established and at most `max_sessions + max_handshakes` in all; sessions reported closed are gone;
//! a refused check-in leaves no session; `proto-ver` always answers with the version document and opens
//! nothing; ordinary endpoints refuse requests without an open session under security 1 and 2 (and serve them
//! under security 0), refuse a session that is busy, and refuse unknown or unregistered endpoints; a session
//! opened by a request is unestablished; an honest client with the right credentials gets a session unless
//! the table is full, one with wrong credentials never does; a sealed request reaches the handler intact and its
//! answer decrypts to a response of the right kind. The online-guessing limit (issue #12), against a model of it
//! ([`GuardModel`]): a device with a secret (a PoP, a password) refuses every handshake during a lockout with the
//! wait that is left, a device without one never counts or locks anyone out; the count is of settled failures
//! (proofs in flight count only once they fail), equal to the model's after every step, and so are the proofs in
//! flight and the wait left; a proof lost with its session (closed, evicted, reopened, cancelled) counts as
//! failed when the session goes, and is reported by what closed it; a wait runs from the moment its failed proof
//! began; past the free failures a proof is taken up only when none is in flight, and one refused for that is
//! refused as `ProofInFlight`, never otherwise; a good proof forgives every failure and ends the lockout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{
    Call, Checkout, GuessLimit, HandlerError, HandshakeStep, Lockout, Peer, ProofOutcome, Protocomm, ProtocommError,
    SessionId, SessionLimits, Step, names,
};
use wifiprov_proto::messages::{config, ctrl, networks, scan};
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSecurity, SecurityError};
use wifiprov_proto::version::{ProvInfo, VersionInfo};

use crate::exec::block_on;
use crate::golden::golden;
use crate::input::Input;
use crate::messages::{self, Message};
use crate::mirror::{Gcm, Mirror};
use crate::rng::FuzzRng;

/// Record ops.
pub const BEGIN: u8 = 0;
/// See the module table.
pub const FINISH: u8 = 1;
/// See the module table.
pub const CANCEL: u8 = 2;
/// See the module table.
pub const HANDLE: u8 = 3;
/// See the module table.
pub const HONEST: u8 = 4;
/// See the module table.
pub const SEALED: u8 = 5;
/// See the module table.
pub const ATTACH: u8 = 6;
/// See the module table.
pub const ADVANCE: u8 = 7;
/// See the module table.
pub const CLOSE: u8 = 8;
/// See the module table.
pub const OPEN: u8 = 9;
const OPS: u8 = 10;

/// Endpoint indices of a record.
pub const ENDPOINTS: [&str; 9] = [
    names::PROTO_VER,
    names::PROV_SESSION,
    names::PROV_CONFIG,
    names::PROV_SCAN,
    names::PROV_CTRL,
    names::PROV_NETWORKS,
    "custom-data",
    "reserved",
    "no-such-endpoint",
];

const MAX_OPS: usize = 96;
const MAX_PENDING: usize = 4;
/// Security 2 handshake steps per input (each may cost milliseconds of SRP arithmetic).
const MAX_SEC2_STEPS: usize = 3;

/// The header of a protocomm input.
pub fn header(scheme: u8, max_sessions: u8, max_handshakes: u8, idle: u8, handshake: u8, seed: u64) -> Vec<u8> {
    let mut out = vec![scheme, max_sessions, max_handshakes, idle, handshake, 0];
    out.extend_from_slice(&seed.to_le_bytes());
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sec0,
    Sec1,
    Sec1NoPop,
    Sec2(usize),
}

fn handler<M: Message + 'static, R: Message + 'static>(
    answer: fn(&M) -> R,
) -> Arc<dyn wifiprov_proto::endpoint::EndpointHandler> {
    Arc::new(move |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> {
        let decoded = M::decode(request).map_err(|e| HandlerError::Malformed(Box::new(e)))?;
        assert!(messages::round_trip::<M>(request).is_some());
        Ok(answer(&decoded).encode())
    })
}

fn device(scheme: Scheme, limits: SessionLimits) -> (Protocomm, Vec<u8>) {
    let security = match scheme {
        Scheme::Sec0 => danger::sec0(),
        Scheme::Sec1 => DeviceSecurity::sec1(ProofOfPossession::new(golden().sec1[0].pop.clone())),
        Scheme::Sec1NoPop => danger::sec1_without_pop(),
        Scheme::Sec2(p) => {
            let p = &golden().sec2[p];
            DeviceSecurity::sec2(p.device(), p.patch)
        }
    };
    let version =
        VersionInfo { app_info: Vec::new(), prov: Some(ProvInfo::for_device(&security)) }.to_cjson().into_bytes();
    let mut pc = Protocomm::new(limits);
    pc.set_version(names::PROTO_VER, version.clone()).expect("new endpoint");
    let _ = pc.set_security(names::PROV_SESSION, security).expect("new endpoint");
    pc.add_endpoint(names::PROV_CONFIG, handler(messages::answer_config)).expect("new endpoint");
    pc.add_endpoint(names::PROV_SCAN, handler(messages::answer_scan)).expect("new endpoint");
    pc.add_endpoint(names::PROV_CTRL, handler(messages::answer_ctrl)).expect("new endpoint");
    pc.add_endpoint(names::PROV_NETWORKS, handler(messages::answer_networks)).expect("new endpoint");
    let echo = |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> {
        Ok(request.iter().rev().copied().collect())
    };
    pc.add_endpoint("custom-data", Arc::new(echo)).expect("new endpoint");
    pc.create_endpoint("reserved").expect("new endpoint");
    (pc, version)
}

enum Pending {
    Handshake(HandshakeStep),
    Call(Call),
}

/// A step begun and not finished.
struct Begun {
    /// Its session.
    session: Option<SessionId>,
    /// Whether that session was closed or replaced meanwhile (its check-in will then be dropped).
    stale: bool,
    /// Set when the step is a proof in flight: when it began.
    proof: Option<Instant>,
    step: Pending,
}

/// The online-guessing limit as it should behave (issue #12), to check [`Protocomm`] against: the settled
/// failures and the end of the wait they started. The proofs in flight are the pending steps that are proofs and
/// not stale.
struct GuardModel {
    limit: GuessLimit,
    failures: u32,
    locked_until: Option<Instant>,
}

impl GuardModel {
    /// A proof that began at `began` failed (or was lost): its wait, if any, runs from `began`.
    fn fail(&mut self, began: Instant) -> ProofOutcome {
        self.failures = self.failures.saturating_add(1);
        let lockout = self.limit.wait_after(self.failures).map(|wait| {
            let until = began.checked_add(wait).unwrap_or(began);
            self.locked_until = Some(self.locked_until.map_or(until, |old| old.max(until)));
            Lockout { failures: self.failures, wait }
        });
        ProofOutcome::Failed { failures: self.failures, lockout }
    }

    fn succeed(&mut self) -> ProofOutcome {
        let forgiven = self.failures;
        self.failures = 0;
        self.locked_until = None;
        ProofOutcome::Succeeded { forgiven }
    }

    fn locked_for(&self, now: Instant) -> Option<Duration> {
        self.locked_until.map(|until| until.saturating_duration_since(now)).filter(|left| !left.is_zero())
    }

    /// Whether a proof may be taken up with `in_flight` others in flight.
    fn admits(&self, in_flight: usize) -> bool {
        let pending = u32::try_from(in_flight).unwrap_or(u32::MAX);
        in_flight == 0 || self.failures.saturating_add(pending) < self.limit.free_failures
    }
}

struct State {
    pc: Protocomm,
    scheme: Scheme,
    version: Vec<u8>,
    limits: SessionLimits,
    now: Instant,
    rng: FuzzRng,
    /// Every session id the table told us about, in order.
    known: Vec<SessionId>,
    /// Steps begun and not finished.
    pending: Vec<Begun>,
    guard: GuardModel,
    mirrors: HashMap<SessionId, Mirror>,
    sec2_steps: usize,
    fresh: u32,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let scheme_byte = input.u8();
    let scheme = match scheme_byte % 4 {
        0 => Scheme::Sec0,
        1 => Scheme::Sec1,
        2 => Scheme::Sec1NoPop,
        _ => Scheme::Sec2(0),
    };
    let free_failures = match scheme_byte / 4 % 8 {
        0 => GuessLimit::default().free_failures,
        n => u32::from(n - 1),
    };
    let guess_limit = GuessLimit { free_failures, ..GuessLimit::default() };
    let limits = SessionLimits {
        max_sessions: 1 + usize::from(input.u8() % 4),
        max_handshakes: 1 + usize::from(input.u8() % 4),
        idle_timeout: Duration::from_secs(1 + u64::from(input.u8() % 64)),
        handshake_timeout: Duration::from_secs(1 + u64::from(input.u8() % 16)),
    };
    let budget = input.u8();
    let seed = input.u64();
    let (mut pc, version) = device(scheme, limits);
    pc.set_guess_limit(guess_limit);
    let mut state = State {
        pc,
        scheme,
        version,
        limits,
        now: Instant::now(),
        rng: FuzzRng::new(seed, (budget > 0).then(|| usize::from(budget) * 8)),
        known: Vec::new(),
        pending: Vec::new(),
        guard: GuardModel { limit: guess_limit, failures: 0, locked_until: None },
        mirrors: HashMap::new(),
        sec2_steps: 0,
        fresh: 1,
    };
    for _ in 0..MAX_OPS {
        let Some((op, body)) = input.record() else { break };
        let mut body = Input::new(body);
        match op % OPS {
            BEGIN => state.begin(&mut body),
            FINISH => {
                let index = usize::from(body.u8());
                state.finish(index);
            }
            CANCEL => state.cancel(usize::from(body.u8())),
            HANDLE => state.handle(&mut body),
            HONEST => state.honest(&mut body),
            SEALED => state.sealed(&mut body),
            ATTACH => {
                let id = state.session(body.u8());
                if body.u8() & 1 == 0 {
                    state.pc.attach(id);
                } else {
                    state.pc.detach(id);
                }
            }
            ADVANCE => state.now += Duration::from_millis(100 * u64::from(body.u16())),
            CLOSE => {
                let id = state.session(body.u8());
                state.close(id, None);
            }
            _ => state.open(&mut body),
        }
        state.check();
    }
    // Whatever is still pending finishes, so every check-in path runs.
    while !state.pending.is_empty() {
        state.finish(0);
        state.check();
    }
}

impl State {
    fn encrypted(&self) -> bool {
        self.scheme != Scheme::Sec0
    }

    /// Whether clients prove a secret, so that wrong proofs are counted and lock guessers out.
    fn guarded(&self) -> bool {
        matches!(self.scheme, Scheme::Sec1 | Scheme::Sec2(_))
    }

    /// The `index`th session id seen so far (any id when none was seen).
    fn session(&self, index: u8) -> SessionId {
        match self.known.len() {
            0 => SessionId(u32::from(index)),
            n => self.known[usize::from(index) % n],
        }
    }

    fn claim(&self, byte: u8) -> Option<SessionId> {
        (byte != 0).then(|| self.session(byte - 1))
    }

    fn learn(&mut self, id: SessionId) {
        if !self.known.contains(&id) {
            self.known.push(id);
        }
    }

    /// Session `id` was closed or replaced: steps begun in it no longer hold it, and a proof among them counts
    /// as failed (returned, as the device should report it).
    fn forget(&mut self, id: SessionId) -> Option<ProofOutcome> {
        self.mirrors.remove(&id);
        let mut lost = None;
        for begun in &mut self.pending {
            if begun.session == Some(id) && !begun.stale {
                begun.stale = true;
                if let Some(began) = begun.proof {
                    lost = Some(self.guard.fail(began));
                }
            }
        }
        lost
    }

    /// Closes session `id` as a transport, or a cancelled request, does. `own`: when the step that closes it (no
    /// longer in `pending`) was a proof in flight in it, when that proof began.
    fn close(&mut self, id: SessionId, own: Option<Instant>) {
        let was_open = self.pc.has_session(id);
        let closed = self.pc.close_session(id);
        assert_eq!(closed.is_some(), was_open, "close_session said otherwise about session {id}");
        assert!(!self.pc.has_session(id));
        let mut expected = own.map(|began| self.guard.fail(began));
        if let Some(lost) = self.forget(id) {
            assert!(expected.is_none(), "two proofs in flight in one session");
            expected = Some(lost);
        }
        assert_eq!(closed.and_then(|c| c.lost), expected, "what closing session {id} lost");
    }

    /// Proofs in flight, as the harness counts them.
    fn in_flight(&self) -> usize {
        self.pending.iter().filter(|b| !b.stale && b.proof.is_some()).count()
    }

    /// After a whole request (`handle`), which does not report what it closed or what its proof came to: steps in
    /// sessions it closed lose their proofs, and the count tells whether the request was a proof that failed or
    /// succeeded (either or neither, but nothing else).
    fn after_handle(&mut self, began: Instant) {
        let gone: Vec<SessionId> = self
            .pending
            .iter()
            .filter(|b| !b.stale)
            .filter_map(|b| b.session)
            .filter(|id| !self.pc.has_session(*id))
            .collect();
        for id in gone {
            let _ = self.forget(id);
        }
        let failures = self.pc.failed_proofs();
        if failures == self.guard.failures.saturating_add(1) {
            assert!(self.guarded(), "a device without a secret counts proofs");
            let _ = self.guard.fail(began);
        } else if failures == 0 {
            let _ = self.guard.succeed();
        } else {
            assert_eq!(failures, self.guard.failures, "a request changed the count otherwise");
        }
    }

    fn busy(&self, id: SessionId) -> bool {
        self.pc.has_session(id) && self.pending.iter().any(|b| b.session == Some(id) && !b.stale)
    }

    /// Whether another security 2 handshake step may run in this input.
    fn sec2_allowance(&mut self, steps: usize) -> bool {
        if !matches!(self.scheme, Scheme::Sec2(_)) {
            return true;
        }
        self.sec2_steps += steps;
        self.sec2_steps <= MAX_SEC2_STEPS
    }

    fn check_error(&self, error: &ProtocommError) {
        let _ = error.is_peer_fault();
        match error {
            ProtocommError::Security { source, .. } => crate::session::check_error(source, &self.rng),
            ProtocommError::Random(_) => assert!(self.rng.may_fail(), "random source failed without being told to"),
            ProtocommError::NoSecurity => panic!("security is configured"),
            ProtocommError::NotRegistered(name) => assert_eq!(name, "reserved"),
            ProtocommError::UnknownEndpoint(name) => assert_eq!(name, "no-such-endpoint"),
            ProtocommError::LockedOut { retry_after } => {
                assert!(self.guarded(), "a device without a secret locked a guesser out");
                assert!(!retry_after.is_zero());
            }
            // Refused before anything changed, so the model is as it was when the request came.
            ProtocommError::ProofInFlight { retry_after } => {
                assert!(self.guarded(), "a device without a secret refused a proof");
                assert_eq!(*retry_after, Duration::from_secs(1));
                assert!(!self.guard.admits(self.in_flight()), "a proof refused although it could be taken up");
                assert_eq!(self.guard.locked_for(self.now), None, "a proof refused as busy during a lockout");
            }
            _ => {}
        }
    }

    /// Reads `peer, claim, endpoint` and leaves the payload in `body`.
    fn request<'a>(&mut self, body: &mut Input<'a>) -> (Peer, Option<SessionId>, &'static str) {
        let peer = Peer::new(u128::from(body.u8() % 4));
        let claim = self.claim(body.u8());
        let endpoint = ENDPOINTS[usize::from(body.u8()) % ENDPOINTS.len()];
        if let Some(id) = claim {
            // Raw bytes move the session's cipher (or restart its handshake): the honest client's copy is stale.
            self.mirrors.remove(&id);
        }
        (peer, claim, endpoint)
    }

    fn begin(&mut self, body: &mut Input<'_>) {
        let (peer, claim, endpoint) = self.request(body);
        if endpoint == names::PROV_SESSION && !self.sec2_allowance(0) {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.finish(0);
        }
        let claimed = claim.filter(|id| self.pc.has_session(*id));
        let busy = claimed.is_some_and(|id| self.busy(id));
        let locked = self.pc.locked_for(self.now).filter(|_| self.guarded());
        let admits = self.guard.admits(self.in_flight());
        if !self.guarded() {
            assert_eq!(self.pc.locked_for(self.now), None, "a device without a secret locked guessers out");
        }
        let result = self.pc.begin(self.now, peer, claim, endpoint, body.rest().to_vec(), &mut self.rng);
        match (endpoint, &result) {
            ("no-such-endpoint", r) => assert!(matches!(r, Err(ProtocommError::UnknownEndpoint(_))), "{r:?}"),
            ("reserved", r) => assert!(matches!(r, Err(ProtocommError::NotRegistered(_))), "{r:?}"),
            (names::PROTO_VER, Ok(begun)) => {
                assert!(matches!(&begun.step, Step::Reply(v) if *v == self.version), "proto-ver answered otherwise");
                assert!(begun.opened.is_none(), "proto-ver opened a session");
                assert_eq!(begun.session, claimed);
            }
            (names::PROTO_VER, Err(e)) => panic!("proto-ver refused: {e}"),
            (names::PROV_SESSION, r) => {
                if let Some(left) = locked {
                    assert!(
                        matches!(r, Err(ProtocommError::LockedOut { retry_after }) if *retry_after == left),
                        "a handshake during a lockout of {left:?} got {r:?}"
                    );
                } else if busy {
                    assert!(r.is_err(), "a second request of a busy session was let through");
                }
                if admits {
                    assert!(!matches!(r, Err(ProtocommError::ProofInFlight { .. })), "a proof refused as busy: {r:?}");
                }
                if let Ok(begun) = r {
                    assert!(begun.session.is_some(), "a handshake outside any session");
                    if claimed.is_some() {
                        assert_eq!(begun.session, claimed);
                    }
                }
            }
            (_, r) => match (claimed, claim) {
                (Some(id), _) if busy => assert!(matches!(r, Err(ProtocommError::SessionBusy(b)) if *b == id), "{r:?}"),
                (Some(id), _) => assert!(matches!(r, Ok(b) if b.session == Some(id)), "{r:?}"),
                (None, Some(id)) if self.encrypted() => {
                    assert!(matches!(r, Err(ProtocommError::UnknownSession(u)) if *u == id), "{r:?}");
                }
                (None, None) if self.encrypted() => assert!(matches!(r, Err(ProtocommError::NoSession)), "{r:?}"),
                (None, _) => assert!(matches!(r, Ok(b) if b.session.is_none()), "security 0 refused a request: {r:?}"),
            },
        }
        let begun = match result {
            Ok(begun) => begun,
            Err(e) => return self.check_error(&e),
        };
        if let Some(opened) = &begun.opened {
            let mut lost = None;
            for closed in &opened.closed {
                assert!(!self.pc.has_session(*closed), "session {closed} reported closed is still open");
                lost = self.forget(*closed).or(lost);
            }
            assert_eq!(opened.lost, lost, "what making room lost");
        }
        // A proof is taken up in a session already open, so nothing above lost one when this is one.
        let proof = match self.pc.proofs_in_flight().checked_sub(self.in_flight()) {
            Some(0) => None,
            Some(1) => {
                assert!(self.guarded(), "a device without a secret took up a proof");
                assert!(matches!(begun.step, Step::Handshake(_)), "a proof outside the handshake");
                assert!(begun.opened.is_none(), "a proof in a session it opened");
                assert!(admits, "more proofs in flight than free failures left");
                Some(self.now)
            }
            other => panic!("the device has {other:?} more proofs in flight than the harness began"),
        };
        if let Some(id) = begun.session {
            self.learn(id);
            if begun.opened.is_some() {
                assert!(!self.pc.is_established(id), "a new session is established before its handshake");
            }
        }
        match begun.step {
            Step::Reply(_) => {}
            Step::Handshake(step) => {
                assert_eq!(Some(step.session()), begun.session);
                let _ = step.is_costly();
                self.pending.push(Begun { session: begun.session, stale: false, proof, step: Pending::Handshake(step) });
            }
            Step::Call(call) => {
                assert_eq!(call.session(), begun.session);
                assert_eq!(call.endpoint(), endpoint);
                self.pending.push(Begun { session: begun.session, stale: false, proof, step: Pending::Call(call) });
            }
        }
    }

    /// Checks a finished step's session back in. `proof`: when the step was a proof still in flight (its session
    /// neither closed nor replaced), when it began.
    fn check_in(&mut self, checkout: Checkout, failed_handshake: bool, proof: Option<Instant>) {
        let id = checkout.id();
        let checked = self.pc.check_in(checkout);
        match (proof, checked.proof) {
            (Some(_), Some(ProofOutcome::Succeeded { forgiven })) => {
                assert!(!failed_handshake, "a refused proof succeeded");
                assert_eq!(self.guard.succeed(), ProofOutcome::Succeeded { forgiven });
                assert_eq!(self.pc.failed_proofs(), 0, "a good proof did not forgive the failures");
                assert_eq!(self.pc.locked_for(self.now), None, "a good proof did not end the lockout");
            }
            (Some(began), Some(failed)) => {
                assert!(self.guarded());
                assert_eq!(failed, self.guard.fail(began), "what a failed proof came to");
            }
            (Some(_), None) => panic!("a proof in flight came back unsettled"),
            (None, outcome) => assert_eq!(outcome, None, "a step that was no proof in flight settled one"),
        }
        for closed in &checked.closed {
            assert!(!self.pc.has_session(*closed), "session {closed} reported closed is still open");
            assert_eq!(self.forget(*closed), None, "a session closed for a place among the established held a proof");
        }
        if checked.refused {
            assert!(!self.pc.has_session(id), "a refused session stayed");
            self.mirrors.remove(&id);
        }
        if failed_handshake && self.pc.has_session(id) {
            assert!(!self.pc.is_established(id), "a failed handshake left its session established");
        }
    }

    fn finish(&mut self, index: usize) {
        if self.pending.is_empty() {
            return;
        }
        let Begun { session, stale, proof, step } = self.pending.remove(index % self.pending.len());
        let proof = proof.filter(|_| !stale);
        match step {
            Pending::Handshake(step) => {
                if !self.sec2_allowance(1) {
                    drop(step);
                    if let Some(id) = session {
                        self.close(id, proof);
                    }
                    return;
                }
                let (checkout, result) = step.run(&mut self.rng);
                if let Err(e) = &result {
                    self.check_error(e);
                }
                self.check_in(checkout, result.is_err(), proof);
            }
            Pending::Call(call) => {
                let endpoint = call.endpoint().to_owned();
                let (checkout, result) = block_on(call.run());
                assert_eq!(checkout.as_ref().map(|c| c.id()), session, "the call came back with another session");
                if let Some(checkout) = checkout {
                    self.check_in(checkout, false, proof);
                }
                match result {
                    Err(e) => self.check_error(&e),
                    // Security 0 answers in clear: the answer is a device response.
                    Ok(reply) if !self.encrypted() => check_plain_answer(&endpoint, &reply),
                    Ok(_) => {}
                }
            }
        }
    }

    fn cancel(&mut self, index: usize) {
        if self.pending.is_empty() {
            return;
        }
        let Begun { session, stale, proof, step } = self.pending.remove(index % self.pending.len());
        drop(step);
        if let Some(id) = session.filter(|_| !stale) {
            self.close(id, proof);
        }
    }

    fn handle(&mut self, body: &mut Input<'_>) {
        let (peer, claim, endpoint) = self.request(body);
        if endpoint == names::PROV_SESSION && !self.sec2_allowance(1) {
            return;
        }
        let result = block_on(self.pc.handle(self.now, peer, claim, endpoint, body.rest(), &mut self.rng));
        self.after_handle(self.now);
        match result {
            Ok((session, reply)) => {
                if let Some(id) = session {
                    self.learn(id);
                }
                if endpoint == names::PROTO_VER {
                    assert_eq!(reply, self.version);
                }
                if endpoint == names::PROV_SESSION {
                    assert!(session.is_some(), "a handshake outside any session");
                } else if !self.encrypted() {
                    check_plain_answer(endpoint, &reply);
                }
            }
            Err(e) => self.check_error(&e),
        }
    }

    fn honest(&mut self, body: &mut Input<'_>) {
        let peer = Peer::new(u128::from(body.u8() % 4));
        let wrong = body.u8() & 1 != 0;
        match self.scheme {
            Scheme::Sec2(profile) => self.honest_replay(peer, wrong, profile),
            _ => self.honest_client(peer, wrong),
        }
    }

    fn honest_client(&mut self, peer: Peer, wrong: bool) {
        let security = match (self.scheme, wrong) {
            (Scheme::Sec0, _) => ClientSecurity::sec0(),
            (_, true) => ClientSecurity::sec1(ProofOfPossession::new(b"wrong-pop".to_vec())),
            (Scheme::Sec1, false) => ClientSecurity::sec1(ProofOfPossession::new(golden().sec1[0].pop.clone())),
            _ => ClientSecurity::sec1(ProofOfPossession::new(Vec::new())),
        };
        let wrong = wrong && self.scheme != Scheme::Sec0;
        let mut client = ClientSession::new(security);
        self.fresh += 1;
        let mut client_rng = FuzzRng::new(u64::from(self.fresh), None);
        let mut request = client.start(&mut client_rng).expect("the client starts");
        let mut claim = None;
        loop {
            let result = block_on(self.pc.handle(self.now, peer, claim, names::PROV_SESSION, &request, &mut self.rng));
            self.after_handle(self.now);
            match result {
                Ok((session, response)) => {
                    let id = session.expect("a handshake runs in a session");
                    self.learn(id);
                    claim = Some(id);
                    match client.handle_response(&response, &mut client_rng) {
                        Ok(Some(next)) => request = next,
                        Ok(None) => {
                            assert!(!wrong, "a wrong proof of possession was accepted");
                            assert!(self.pc.is_established(id), "the client is established, the device is not");
                            assert_eq!(self.pc.failed_proofs(), 0, "a good proof did not forgive the failures");
                            self.mirrors.insert(id, Mirror::Session(Box::new(client)));
                            return;
                        }
                        Err(e) => panic!("the client refused the device's answer: {e}"),
                    }
                }
                Err(e) => {
                    self.check_error(&e);
                    if !wrong && !self.rng.may_fail() {
                        assert!(!matches!(e, ProtocommError::Security { .. }), "an honest handshake was refused: {e}");
                    }
                    if let Some(id) = claim {
                        assert!(!self.pc.is_established(id), "a refused handshake left its session established");
                    }
                    return;
                }
            }
        }
    }

    /// Security 2: the profile's recorded client messages, the device's recorded secrets queued (after the four
    /// bytes of a fresh session id).
    fn honest_replay(&mut self, peer: Peer, wrong: bool, profile: usize) {
        if !self.sec2_allowance(2) {
            return;
        }
        let p = &golden().sec2[profile];
        loop {
            self.fresh += 1;
            if !self.known.contains(&SessionId(self.fresh)) && !self.pc.has_session(SessionId(self.fresh)) {
                break;
            }
        }
        self.rng.script(&[self.fresh.to_be_bytes().as_slice(), &p.device_draws].concat());
        let exact = !self.rng.may_fail();
        let result =
            block_on(self.pc.handle(self.now, peer, None, names::PROV_SESSION, &p.handshake[0].request, &mut self.rng));
        self.after_handle(self.now);
        let id = match result {
            Ok((session, response)) => {
                let id = session.expect("a handshake runs in a session");
                self.learn(id);
                if exact {
                    assert_eq!(id, SessionId(self.fresh));
                    assert_eq!(Some(&response), p.handshake[0].response.as_ref(), "answer to the recorded command 0");
                }
                id
            }
            Err(e) => {
                self.check_error(&e);
                if exact {
                    assert!(!matches!(e, ProtocommError::Security { .. }), "the recorded command 0 was refused: {e}");
                }
                return;
            }
        };
        let mut cmd1 = p.handshake[1].request.clone();
        if wrong && let Some(last) = cmd1.last_mut() {
            *last ^= 1;
        }
        let result = block_on(self.pc.handle(self.now, peer, Some(id), names::PROV_SESSION, &cmd1, &mut self.rng));
        self.after_handle(self.now);
        match result {
            Ok((_, response)) => {
                assert!(!wrong, "a wrong SRP proof was accepted");
                if exact {
                    assert_eq!(Some(&response), p.handshake[1].response.as_ref(), "answer to the recorded command 1");
                }
                assert!(self.pc.is_established(id));
                if let Some(gcm) = Gcm::new(&p.aes_key, p.patch, &p.nonce) {
                    self.mirrors.insert(id, Mirror::Gcm(Box::new(gcm)));
                }
            }
            Err(e) => {
                self.check_error(&e);
                if wrong {
                    assert!(
                        matches!(&e, ProtocommError::Security { source: SecurityError::ClientProofMismatch, .. })
                            || !matches!(&e, ProtocommError::Security { .. }),
                        "a wrong proof refused as {e}"
                    );
                } else if exact {
                    assert!(!matches!(e, ProtocommError::Security { .. }), "the recorded command 1 was refused: {e}");
                }
                assert!(!self.pc.is_established(id));
            }
        }
    }

    fn sealed(&mut self, body: &mut Input<'_>) {
        let id = self.session(body.u8());
        let endpoint = ENDPOINTS[2 + usize::from(body.u8()) % 5];
        let plaintext = body.rest();
        if !self.pc.has_session(id) {
            self.mirrors.remove(&id);
            return;
        }
        if self.busy(id) {
            return;
        }
        let Some(mirror) = self.mirrors.get_mut(&id) else { return };
        let mut sealed = plaintext.to_vec();
        if mirror.encrypt(&mut sealed).is_err() {
            self.mirrors.remove(&id);
            return;
        }
        let result = block_on(self.pc.handle(self.now, Peer::new(0), Some(id), endpoint, &sealed, &mut self.rng));
        self.after_handle(self.now);
        match result {
            Ok((session, mut reply)) => {
                assert_eq!(session, Some(id));
                let mirror = self.mirrors.get_mut(&id).expect("the mirror is still there");
                mirror.decrypt(&mut reply).expect("the client opens the device's answer");
                check_answer(endpoint, plaintext, &reply);
            }
            // The handler refused what it decrypted; both ends' ciphers moved the same way.
            Err(ProtocommError::Handler { .. }) => {}
            Err(e) => panic!("a sealed request of an established session was refused: {e}"),
        }
    }

    fn open(&mut self, body: &mut Input<'_>) {
        let which = body.u8();
        let peer = Peer::new(u128::from(body.u8() % 4));
        let id = if which & 0x80 != 0 {
            self.fresh += 1;
            SessionId(self.fresh)
        } else {
            self.session(which)
        };
        match self.pc.open_session(id, peer, self.now) {
            Ok(opened) => {
                self.learn(id);
                let mut lost = self.forget(id);
                assert!(self.pc.has_session(id) && !self.pc.is_established(id));
                for closed in opened.closed.iter().filter(|c| **c != id) {
                    assert!(!self.pc.has_session(*closed), "session {closed} reported closed is still open");
                    lost = self.forget(*closed).or(lost);
                }
                assert_eq!(opened.lost, lost, "what opening session {id} lost");
            }
            Err(e) => self.check_error(&e),
        }
    }

    fn check(&mut self) {
        let open: Vec<SessionId> = self.known.iter().copied().filter(|id| self.pc.has_session(*id)).collect();
        let count = self.pc.session_count();
        assert!(open.len() <= count);
        let established = open.iter().filter(|id| self.pc.is_established(**id)).count();
        assert!(established <= self.limits.max_sessions, "{established} sessions established, limit {:?}", self.limits);
        assert!(
            count <= self.limits.max_sessions + self.limits.max_handshakes,
            "{count} sessions open, limits {:?}",
            self.limits
        );
        // `handle` does not say which sessions it closed to make room: forget the clients of those.
        let pc = &self.pc;
        self.mirrors.retain(|id, _| pc.has_session(*id));
        for id in self.mirrors.keys() {
            assert!(self.pc.is_established(*id), "session {id} has a client but is not established");
        }
        assert_eq!(self.pc.failed_proofs(), self.guard.failures, "the count of failed proofs");
        assert_eq!(self.pc.proofs_in_flight(), self.in_flight(), "proofs in flight");
        assert_eq!(self.pc.locked_for(self.now), self.guard.locked_for(self.now), "the wait left");
        if !self.guarded() {
            assert_eq!((self.guard.failures, self.in_flight()), (0, 0), "a device without a secret counts proofs");
        }
    }
}

/// A device answer in clear must be a response of the endpoint.
fn check_plain_answer(endpoint: &str, reply: &[u8]) {
    let ok = match endpoint {
        names::PROV_CONFIG => config::Response::decode(reply).is_ok(),
        names::PROV_SCAN => scan::Response::decode(reply).is_ok(),
        names::PROV_CTRL => ctrl::Response::decode(reply).is_ok(),
        names::PROV_NETWORKS => networks::Response::decode(reply).is_ok(),
        _ => true,
    };
    assert!(ok, "{endpoint} answered something that is not one of its responses");
}

/// The answer to a request the handler accepted is a response of the right kind.
fn check_answer(endpoint: &str, plaintext: &[u8], reply: &[u8]) {
    fn answers<Q: Message, R: Message>(plaintext: &[u8], reply: &[u8], answers: fn(&R, &Q) -> bool) {
        let request = Q::decode(plaintext).expect("the handler accepted the request");
        let response = R::decode(reply).expect("the device's answer decodes");
        assert!(answers(&response, &request), "{response:?} does not answer {request:?}");
    }
    match endpoint {
        names::PROV_CONFIG => answers(plaintext, reply, config::Response::answers),
        names::PROV_SCAN => answers(plaintext, reply, scan::Response::answers),
        names::PROV_CTRL => answers(plaintext, reply, ctrl::Response::answers),
        names::PROV_NETWORKS => answers(plaintext, reply, networks::Response::answers),
        _ => {
            let reversed: Vec<u8> = plaintext.iter().rev().copied().collect();
            assert_eq!(reply, reversed, "custom-data answered something else");
        }
    }
}
