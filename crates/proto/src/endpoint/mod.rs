//! The protocomm endpoint layer: a table of named endpoints, the session table, and what each request needs.
//!
//! A transport (through its shared dispatcher) hands every request to [`Protocomm::begin`] with the peer it came
//! from and the session it claims (a cookie, a connection, a link), and gets a [`Step`] back: a ready reply
//! (`proto-ver`), a handshake step, or an ordinary endpoint's call. The last two hold their session checked
//! out, so the caller can release whatever guards the instance while the step runs, and give the session back
//! with [`Protocomm::check_in`]. On an error the transport must not answer at all (HTTP: close the connection;
//! BLE: ATT error), which is how ESP devices fail and what ESP clients expect.

mod call;
mod guard;
mod sessions;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use zeroize::Zeroizing;

pub use call::{Call, Checkout, HandshakeStep};
pub use guard::{GuessLimit, Lockout, ProofOutcome};
pub use sessions::{CheckedIn, Closed, Opened, SessionLimits};

use crate::rng::{RandomUnavailable, SecureRandom};
use crate::security::{DeviceSecurity, DeviceSession, SecurityError, SecurityVersion};
use guard::{Guard, PROOF_IN_FLIGHT_RETRY};
use sessions::Sessions;

/// Endpoint names of the provisioning service. Use these instead of repeating the literals.
pub mod names {
    /// Version and capabilities (JSON); never encrypted, usable before any handshake.
    pub const PROTO_VER: &str = "proto-ver";
    /// The security handshake.
    pub const PROV_SESSION: &str = "prov-session";
    /// Wi-Fi credentials: set, apply, status.
    pub const PROV_CONFIG: &str = "prov-config";
    /// Device-side Wi-Fi scan.
    pub const PROV_SCAN: &str = "prov-scan";
    /// Reset after a failed attempt, or reprovision.
    pub const PROV_CTRL: &str = "prov-ctrl";
    /// wifiprov's saved-network list (a custom endpoint, not part of ESP-IDF; see `docs/prov-networks.md`).
    pub const PROV_NETWORKS: &str = "prov-networks";

    /// Every endpoint the provisioning service serves itself; a custom endpoint may take none of these names.
    pub const BUILT_IN: [&str; 6] = [PROTO_VER, PROV_SESSION, PROV_CONFIG, PROV_SCAN, PROV_CTRL, PROV_NETWORKS];
}

/// Identifies one client session: the HTTP cookie value, or the BLE link's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who sent a request, as far as its transport can tell: a number the transport derives from the peer's
/// address (IP address, Bluetooth device address), distinct between peers and between transports. Sessions
/// remember the peer that opened them, so that making room takes from the peer holding the most unfinished
/// handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer(u128);

impl Peer {
    /// A peer from the transport's number for it.
    pub const fn new(id: u128) -> Self {
        Self(id)
    }
}

/// Why an endpoint handler refused a request. The transport drops the exchange either way; the variant decides
/// how the daemon logs it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The request could not be decoded.
    #[error("malformed request: {0}")]
    Malformed(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request was understood but is not acceptable now.
    #[error("request rejected: {0}")]
    Rejected(String),
    /// The handler could not do its work (backend failure, internal state).
    #[error("handler failed")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A decrypted request as an [`EndpointHandler`] gets it: wiped when dropped.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// What an [`EndpointHandler`] returns: the plaintext answer, once it has one.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, HandlerError>> + Send + 'static>>;

/// The application side of an ordinary endpoint: plaintext request in, plaintext response out.
///
/// A handler may wait (for a scan, a join, a program it runs) by returning a future that completes later; it
/// never blocks a thread. `session` is the request's security session, `None` for a security 0 request sent
/// outside any session (ESP serves those too). Plain functions and closures of the shape
/// `Fn(Option<SessionId>, &[u8]) -> Result<Vec<u8>, HandlerError>` are handlers that answer at once.
pub trait EndpointHandler: Send + Sync {
    /// Handles one decrypted request. The plaintext is wiped when dropped.
    fn handle(&self, session: Option<SessionId>, request: Plaintext) -> HandlerFuture;
}

impl<F> EndpointHandler for F
where
    F: Fn(Option<SessionId>, &[u8]) -> Result<Vec<u8>, HandlerError> + Send + Sync,
{
    fn handle(&self, session: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        Box::pin(std::future::ready(self(session, &request)))
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocommError {
    /// No endpoint of that name exists.
    #[error("unknown endpoint {0:?}")]
    UnknownEndpoint(String),
    /// The endpoint was created but its handler is not registered yet.
    #[error("endpoint {0:?} has no handler registered")]
    NotRegistered(String),
    /// An endpoint of that name already exists.
    #[error("endpoint {0:?} already exists")]
    DuplicateEndpoint(String),
    /// The request names a session that is not open (closed, evicted, or never opened).
    #[error("session {0} is not open")]
    UnknownSession(SessionId),
    /// An encrypted endpoint was asked without any session; a client must start one on the security endpoint.
    #[error("no session: the security handshake must come first")]
    NoSession,
    /// Another request of the same session is still being handled; a session's requests are strictly ordered.
    #[error("session {0} is busy with another request")]
    SessionBusy(SessionId),
    /// The session table is full of sessions that may not be evicted.
    #[error("too many sessions ({0} open, none may make room)")]
    TooManySessions(usize),
    /// No session id could be drawn.
    #[error("cannot draw a session id")]
    Random(#[source] RandomUnavailable),
    /// A request on the security endpoint, but no security scheme is configured.
    #[error("no security scheme is configured")]
    NoSecurity,
    /// Too many wrong proofs in a row: new handshakes are refused until the wait is over (see [`GuessLimit`]).
    #[error("locked for {} s after repeated wrong proofs of possession or passwords", retry_after_secs(*.retry_after))]
    LockedOut {
        /// How long the wait still lasts.
        retry_after: std::time::Duration,
    },
    /// A proof arrived while another one is being checked, after the free failures are spent: then proofs are
    /// checked one at a time (see [`GuessLimit`]). Not a lockout; the client may send it again shortly.
    #[error("another proof of possession or password is being checked; retry in {} s", retry_after_secs(*.retry_after))]
    ProofInFlight {
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// The security layer refused the handshake message or the encrypted body.
    #[error("{endpoint}: security")]
    Security {
        /// The endpoint the request was for.
        endpoint: String,
        /// What the security layer refused.
        #[source]
        source: SecurityError,
    },
    /// The endpoint's handler refused the request.
    #[error("{endpoint}: handler")]
    Handler {
        /// The endpoint.
        endpoint: String,
        /// The handler's error.
        #[source]
        source: HandlerError,
    },
}

impl ProtocommError {
    /// Whether the peer is to blame (a malformed or refused message, an unknown endpoint or session, a full
    /// session table) rather than the device (no security scheme or random source, a handler not registered
    /// yet, a handler's own failure). Transports log the first kind at `warn`, rate-limited, and the second at
    /// `error`.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            Self::NoSecurity
                | Self::Random(_)
                | Self::NotRegistered(_)
                | Self::Handler { source: HandlerError::Internal(_), .. }
        )
    }
}

/// Whole seconds to wait, rounded up, as a client should be told: "locked for 0 s" would invite a retry that fails.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0))
}

/// Draws of a fresh session id before giving up (a collision needs the table to hold an id already drawn).
const SESSION_ID_ATTEMPTS: usize = 8;

/// What a request needs next, from [`Protocomm::begin`].
#[must_use]
#[derive(Debug)]
pub enum Step {
    /// The answer is ready (the version endpoint).
    Reply(Vec<u8>),
    /// A security handshake message: [`HandshakeStep::run`] it, then [`Protocomm::check_in`] its session.
    Handshake(HandshakeStep),
    /// An ordinary endpoint: [`Call::run`] it, then [`Protocomm::check_in`] its session.
    Call(Call),
}

/// The outcome of [`Protocomm::begin`].
#[must_use]
#[derive(Debug)]
pub struct Begun {
    /// The session the request runs in, if any.
    pub session: Option<SessionId>,
    /// Set when the request opened its session: what was closed to make room. The first answer of a new session
    /// tells the client its id (HTTP: `Set-Cookie`).
    pub opened: Option<Opened>,
    /// What to do next.
    pub step: Step,
}

enum Endpoint {
    Security,
    Version,
    Ordinary(Option<Arc<dyn EndpointHandler>>),
}

/// A protocomm instance: endpoints, security, sessions. It performs no I/O.
pub struct Protocomm {
    // Creation order matters: BLE assigns characteristic ids in this order.
    endpoints: Vec<(String, Endpoint)>,
    security: Option<DeviceSecurity>,
    version: Vec<u8>,
    sessions: Sessions,
    guard: Guard,
}

impl Protocomm {
    /// An instance with no endpoints.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            endpoints: Vec::new(),
            security: None,
            version: Vec::new(),
            sessions: Sessions::new(limits),
            guard: Guard::new(GuessLimit::default()),
        }
    }

    /// Replaces the online-guessing limit; the count of failed proofs and a wait under way stay.
    pub fn set_guess_limit(&mut self, limit: GuessLimit) {
        self.guard.set_limit(limit);
    }

    /// The online-guessing limit.
    pub fn guess_limit(&self) -> GuessLimit {
        self.guard.limit()
    }

    /// Takes the count of failed proofs persisted before a restart. A count past the free failures waits again
    /// from `now` (returned, to be reported): restarting the device never shortens a wait.
    pub fn restore_failed_proofs(&mut self, failures: u32, now: Instant) -> Option<Lockout> {
        self.guard.restore(failures, now)
    }

    /// Failed proofs in a row so far, settled: proofs being checked right now count once they fail (or once
    /// their session closes before they are checked in).
    pub fn failed_proofs(&self) -> u32 {
        self.guard.failures()
    }

    /// Proofs being checked right now: taken up by [`Protocomm::begin`] and not yet checked in.
    pub fn proofs_in_flight(&self) -> usize {
        self.guard.in_flight()
    }

    /// How long new handshakes are still refused after repeated wrong proofs, if they are.
    pub fn locked_for(&self, now: Instant) -> Option<std::time::Duration> {
        self.guard.locked_for(now)
    }

    /// The session table's limits.
    pub fn limits(&self) -> SessionLimits {
        self.sessions.limits()
    }

    /// Makes `name` the security endpoint with `security`; open sessions are dropped (their ids are returned), as
    /// their keys belong to the old scheme. A proof still being checked in one of them counts as failed (see
    /// [`GuessLimit`]); the count is reported with the next change to it.
    pub fn set_security(&mut self, name: &str, security: DeviceSecurity) -> Result<Vec<SessionId>, ProtocommError> {
        self.add(name, Endpoint::Security)?;
        self.security = Some(security);
        let cleared = self.sessions.clear();
        let _ = self.guard.lose(cleared.iter().copied());
        Ok(cleared.into_iter().map(|(id, _)| id).collect())
    }

    /// Makes `name` the version endpoint, answering every request with `version` verbatim.
    pub fn set_version(&mut self, name: &str, version: impl Into<Vec<u8>>) -> Result<(), ProtocommError> {
        self.add(name, Endpoint::Version)?;
        self.version = version.into();
        Ok(())
    }

    /// Adds an ordinary endpoint with its handler.
    pub fn add_endpoint(&mut self, name: &str, handler: Arc<dyn EndpointHandler>) -> Result<(), ProtocommError> {
        self.add(name, Endpoint::Ordinary(Some(handler)))
    }

    /// Reserves an ordinary endpoint without a handler yet (ESP's "create before start, register after").
    pub fn create_endpoint(&mut self, name: &str) -> Result<(), ProtocommError> {
        self.add(name, Endpoint::Ordinary(None))
    }

    /// Attaches or replaces the handler of an endpoint made by [`Protocomm::create_endpoint`].
    pub fn register_handler(&mut self, name: &str, handler: Arc<dyn EndpointHandler>) -> Result<(), ProtocommError> {
        match self.endpoints.iter_mut().find(|(n, _)| n == name) {
            Some((_, Endpoint::Ordinary(slot))) => {
                *slot = Some(handler);
                Ok(())
            }
            Some(_) => Err(ProtocommError::DuplicateEndpoint(name.to_owned())),
            None => Err(ProtocommError::UnknownEndpoint(name.to_owned())),
        }
    }

    /// Removes an endpoint of any kind; returns whether it existed.
    pub fn remove_endpoint(&mut self, name: &str) -> bool {
        let before = self.endpoints.len();
        self.endpoints.retain(|(n, _)| n != name);
        before != self.endpoints.len()
    }

    /// Endpoint names in creation order.
    pub fn endpoint_names(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|(n, _)| n.as_str())
    }

    /// Whether an endpoint of this name exists.
    pub fn has_endpoint(&self, name: &str) -> bool {
        self.endpoints.iter().any(|(n, _)| n == name)
    }

    /// The configured security scheme, if any.
    pub fn security(&self) -> Option<&DeviceSecurity> {
        self.security.as_ref()
    }

    fn add(&mut self, name: &str, endpoint: Endpoint) -> Result<(), ProtocommError> {
        if self.has_endpoint(name) {
            return Err(ProtocommError::DuplicateEndpoint(name.to_owned()));
        }
        self.endpoints.push((name.to_owned(), endpoint));
        Ok(())
    }

    /// Opens (or restarts) session `id` for `peer`, making room if every handshake place is taken (see
    /// [`SessionLimits`]: established sessions are never evicted for a handshake, half-open ones of the noisiest
    /// peer go first). [`Protocomm::begin`] opens sessions by itself; this is for callers that pick the id. A proof
    /// being checked in a session it closes or restarts counts as failed ([`Opened::lost`]).
    pub fn open_session(&mut self, id: SessionId, peer: Peer, now: Instant) -> Result<Opened, ProtocommError> {
        let security = self.security.as_ref().ok_or(ProtocommError::NoSecurity)?;
        let (opened, removed) = self.sessions.open(id, peer, DeviceSession::new(security), now)?;
        Ok(Opened { lost: self.guard.lose(removed), ..opened })
    }

    /// A transport connection now carries session `id` (an HTTP connection that opened it or presented its
    /// cookie, a BLE link). A session with a connection is not abandoned.
    pub fn attach(&mut self, id: SessionId) {
        if let Some(entry) = self.sessions.get_mut(id) {
            entry.connections = entry.connections.saturating_add(1);
        }
    }

    /// A connection that carried session `id` has gone (or moved to another session). The session stays open
    /// (a client may come back with its cookie).
    pub fn detach(&mut self, id: SessionId) {
        if let Some(entry) = self.sessions.get_mut(id) {
            entry.connections = entry.connections.saturating_sub(1);
        }
    }

    /// A random session id not in use. Drawn big-endian from four bytes, like the ids in the esp_prov
    /// transcripts. Fails when the random source does, or keeps returning ids in use.
    pub fn unused_session_id(&self, rng: &mut dyn SecureRandom) -> Result<SessionId, RandomUnavailable> {
        for _ in 0..SESSION_ID_ATTEMPTS {
            let mut bytes = [0u8; 4];
            rng.fill(&mut bytes)?;
            let id = SessionId(u32::from_be_bytes(bytes));
            if !self.has_session(id) {
                return Ok(id);
            }
        }
        Err(RandomUnavailable)
    }

    /// Closes session `id`; `None` if it was not open. A proof being checked in it counts as failed
    /// ([`Closed::lost`]): dropping a connection mid-proof does not escape the count.
    pub fn close_session(&mut self, id: SessionId) -> Option<Closed> {
        let opening = self.sessions.remove(id)?;
        Some(Closed { lost: self.guard.lose([(id, opening)]) })
    }

    /// Whether session `id` is open.
    pub fn has_session(&self, id: SessionId) -> bool {
        self.sessions.contains(id)
    }

    /// Whether session `id` has completed its handshake.
    pub fn is_established(&self, id: SessionId) -> bool {
        self.sessions.get(id).is_some_and(|e| e.established)
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Starts a request from `peer` to `endpoint`, claiming session `claim` (the transport's cookie or
    /// connection). The claim counts only if that session is open. Then:
    ///
    /// - the version endpoint answers at once, with or without a session, and opens none;
    /// - the security endpoint runs in the claimed session, or opens a new one (drawing its id from `rng`);
    /// - an ordinary endpoint runs in the claimed session; without one it is refused, except under security 0,
    ///   which like ESP serves it outside any session.
    pub fn begin(
        &mut self,
        now: Instant,
        peer: Peer,
        claim: Option<SessionId>,
        endpoint: &str,
        body: Vec<u8>,
        rng: &mut dyn SecureRandom,
    ) -> Result<Begun, ProtocommError> {
        let Some((_, kind)) = self.endpoints.iter().find(|(n, _)| n == endpoint) else {
            return Err(ProtocommError::UnknownEndpoint(endpoint.to_owned()));
        };
        let claimed = claim.filter(|id| self.sessions.contains(*id));
        match kind {
            Endpoint::Version => Ok(Begun { session: claimed, opened: None, step: Step::Reply(self.version.clone()) }),
            Endpoint::Security => {
                let guarded = self.security.as_ref().is_some_and(DeviceSecurity::has_secret);
                if guarded && let Some(retry_after) = self.guard.locked_for(now) {
                    return Err(ProtocommError::LockedOut { retry_after });
                }
                // Past the free failures, proofs are checked one at a time (see the guard module). Asked before
                // anything changes, so a refused proof leaves its session as it was.
                if guarded && !self.guard.admits_proof() && claimed.is_some_and(|id| self.sessions.awaits_proof(id)) {
                    return Err(ProtocommError::ProofInFlight { retry_after: PROOF_IN_FLIGHT_RETRY });
                }
                let (id, opened) = match claimed {
                    Some(id) => (id, None),
                    None => {
                        let id = self.unused_session_id(rng).map_err(ProtocommError::Random)?;
                        (id, Some(self.open_session(id, peer, now)?))
                    }
                };
                let mut checkout = self.check_out(id, now)?;
                // Any message to a session that waits for the proof is a proof in flight until it is checked in
                // (see the guard module), so a client cannot dodge the count by restarting the handshake there.
                if guarded && checkout.session.awaits_proof() {
                    checkout.proving = true;
                    self.guard.take_up((id, checkout.opening), now);
                }
                let step = Step::Handshake(HandshakeStep { endpoint: endpoint.to_owned(), checkout, request: body });
                Ok(Begun { session: Some(id), opened, step })
            }
            Endpoint::Ordinary(handler) => {
                let handler = handler.clone().ok_or_else(|| ProtocommError::NotRegistered(endpoint.to_owned()))?;
                // Security 0 has no keys, so like ESP it serves requests outside any handshake.
                let encrypted = self.security.as_ref().is_some_and(|s| s.version() != SecurityVersion::Sec0);
                let checkout = match (claimed, claim) {
                    (Some(id), _) => Some(self.check_out(id, now)?),
                    (None, Some(id)) if encrypted => return Err(ProtocommError::UnknownSession(id)),
                    (None, None) if encrypted => return Err(ProtocommError::NoSession),
                    (None, _) => None,
                };
                let session = checkout.as_ref().map(Checkout::id);
                let call = Call { endpoint: endpoint.to_owned(), checkout, handler, body };
                Ok(Begun { session, opened: None, step: Step::Call(call) })
            }
        }
    }

    fn check_out(&mut self, id: SessionId, now: Instant) -> Result<Checkout, ProtocommError> {
        let entry = self.sessions.get_mut(id).ok_or(ProtocommError::UnknownSession(id))?;
        let session = entry.session.take().ok_or(ProtocommError::SessionBusy(id))?;
        entry.last_used = now;
        Ok(Checkout { id, session, opening: entry.opening, proving: false })
    }

    /// Puts a checked-out session back, unless it was closed or reopened meanwhile (then the new one stays and
    /// this one is dropped). A session whose handshake has just completed takes a place among the established
    /// sessions, which may close the idlest one whose client left, or refuse this one (see [`SessionLimits`]).
    /// A proof's outcome is settled here ([`CheckedIn::proof`]), unless its session was closed or reopened
    /// meanwhile: it counted as failed then.
    pub fn check_in(&mut self, checkout: Checkout) -> CheckedIn {
        let Checkout { id, session, opening, proving } = checkout;
        let proof = if proving { self.guard.settle((id, opening), session.is_established()) } else { None };
        // Settled first: a session refused a place among the established ones is closed here, but its proof was
        // right. Nothing else this closes can hold a proof (only sessions between requests make room).
        CheckedIn { proof, ..self.sessions.check_in(id, opening, session) }
    }

    /// Runs a whole request, [`Protocomm::begin`] to [`Protocomm::check_in`], holding `&mut self` throughout:
    /// for tests and single-client callers. Returns the session it ran in with the answer.
    pub async fn handle(
        &mut self,
        now: Instant,
        peer: Peer,
        claim: Option<SessionId>,
        endpoint: &str,
        body: &[u8],
        rng: &mut dyn SecureRandom,
    ) -> Result<(Option<SessionId>, Vec<u8>), ProtocommError> {
        let begun = self.begin(now, peer, claim, endpoint, body.to_vec(), rng)?;
        let (checkout, result) = match begun.step {
            Step::Reply(reply) => return Ok((begun.session, reply)),
            Step::Handshake(step) => {
                let (checkout, result) = step.run(rng);
                (Some(checkout), result)
            }
            Step::Call(call) => call.run().await,
        };
        if let Some(checkout) = checkout
            && self.check_in(checkout).refused
        {
            return Err(ProtocommError::TooManySessions(self.session_count()));
        }
        result.map(|reply| (begun.session, reply))
    }
}

impl fmt::Debug for Protocomm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protocomm")
            .field("endpoints", &self.endpoints.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("security", &self.security)
            .field("sessions", &self.sessions.len())
            .field("limits", &self.sessions.limits())
            .finish()
    }
}
