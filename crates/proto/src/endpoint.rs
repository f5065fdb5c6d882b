//! The protocomm endpoint layer: a table of named endpoints, the session table, and dispatch.
//!
//! Transports hand every request to [`Protocomm::handle`] as `(now, session id, endpoint name, body)` and send
//! back whatever bytes it returns. On an error they must not answer at all (HTTP: close the connection; BLE:
//! ATT error), which is how ESP devices fail and what ESP clients expect.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::rng::{RandomUnavailable, SecureRandom};
use crate::security::{DeviceSecurity, DeviceSession, SecurityError, SecurityVersion};

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
}

/// Identifies one client session: the HTTP cookie value, or the BLE connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
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

/// The application side of an ordinary endpoint: plaintext request in, plaintext response out.
///
/// Handlers are shared (`&self`, `Sync`) so a transport can run one without holding the lock around the
/// [`Protocomm`] (see [`Protocomm::begin`]); a handler that keeps state uses its own interior mutability.
pub trait EndpointHandler: Send + Sync {
    /// Handles one decrypted request.
    fn handle(&self, session: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError>;
}

impl<F> EndpointHandler for F
where
    F: Fn(SessionId, &[u8]) -> Result<Vec<u8>, HandlerError> + Send + Sync,
{
    fn handle(&self, session: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        self(session, request)
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
    /// The request names a session that is not open.
    #[error("session {0} is not open")]
    UnknownSession(SessionId),
    /// Another request of the same session is still being handled; a session's requests are strictly ordered.
    #[error("session {0} is busy with another request")]
    SessionBusy(SessionId),
    /// The session table is full of established sessions that are still in use.
    #[error("too many sessions ({0} established and active)")]
    TooManySessions(usize),
    /// A request on the security endpoint, but no security scheme is configured.
    #[error("no security scheme is configured")]
    NoSecurity,
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
    /// session table) rather than the device (no security scheme, a handler not registered yet, a handler's own
    /// failure). Transports log the first kind at `warn` and the second at `error`.
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            Self::NoSecurity | Self::NotRegistered(_) | Self::Handler { source: HandlerError::Internal(_), .. }
        )
    }
}

/// Why a transport drops a request without an answer (HTTP: closes the connection; BLE: an ATT error): what
/// it logs, whatever the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No session id could be drawn.
    #[error("cannot draw a session id")]
    Random(#[source] RandomUnavailable),
    /// The session table refused a new session.
    #[error("cannot open a session")]
    Open(#[source] ProtocommError),
    /// Protocomm refused the request.
    #[error("request refused")]
    Protocomm(#[source] ProtocommError),
}

impl Refusal {
    /// Whether the peer is to blame (logged at `warn`), as opposed to the device itself (see
    /// [`ProtocommError::is_peer_fault`]).
    pub fn is_peer_fault(&self) -> bool {
        match self {
            Self::Random(_) => false,
            Self::Open(e) | Self::Protocomm(e) => e.is_peer_fault(),
        }
    }
}

/// A handler panicked; its request fails like one whose handler returned an internal error.
#[derive(Debug, thiserror::Error)]
#[error("endpoint handler panicked")]
struct HandlerPanicked;

/// Draws of a fresh session id before giving up (a collision needs the table to hold an id already drawn).
const SESSION_ID_ATTEMPTS: usize = 8;

/// How many sessions a device keeps, and when an idle established session may be dropped for a new one.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions kept at once. ESP keeps exactly one; 1 reproduces that behaviour.
    pub max_sessions: usize,
    /// An established session idle for longer than this may be evicted to make room.
    pub idle_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { max_sessions: 8, idle_timeout: Duration::from_secs(300) }
    }
}

/// What [`Protocomm::open_session`] did to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Opened {
    /// A session that was dropped to make room; the transport should forget it (cookie, connection).
    pub evicted: Option<SessionId>,
}

enum Endpoint {
    Security,
    Version,
    Ordinary(Option<Arc<dyn EndpointHandler>>),
}

struct SessionEntry {
    /// `None` while a request of this session is between [`Protocomm::begin`] and [`Protocomm::finish`].
    session: Option<DeviceSession>,
    last_used: Instant,
    /// Transport connections (or links) currently carrying this session; see [`Protocomm::attach`].
    connections: u32,
}

impl SessionEntry {
    fn is_established(&self) -> bool {
        // A checked-out session is mid-request, so it is past its handshake or on a sec0 device.
        self.session.as_ref().is_none_or(DeviceSession::is_established)
    }
}

/// The outcome of [`Protocomm::begin`].
#[must_use]
pub enum Step {
    /// The answer is ready (version and security endpoints).
    Reply(Vec<u8>),
    /// An ordinary endpoint: run [`Call::run`] (no lock needed), then pass the call to [`Protocomm::finish`].
    Call(Call),
}

impl Step {
    /// Completes the request: a ready reply as it is, or the handler run and the call handed to
    /// [`Protocomm::finish`] on the instance `relock` returns. Transports that share the instance release it
    /// between [`Protocomm::begin`] and this, so that other requests proceed while a handler runs.
    pub fn complete<P>(self, relock: impl FnOnce() -> P) -> Result<Vec<u8>, ProtocommError>
    where
        P: std::ops::DerefMut<Target = Protocomm>,
    {
        match self {
            Self::Reply(reply) => Ok(reply),
            Self::Call(call) => {
                let response = call.run();
                relock().finish(call, response)
            }
        }
    }
}

/// A decrypted request on its way through an endpoint handler. It holds its session checked out of the table,
/// so pass it to [`Protocomm::finish`] even when the handler fails.
pub struct Call {
    session_id: SessionId,
    endpoint: String,
    session: Option<DeviceSession>,
    handler: Arc<dyn EndpointHandler>,
    plaintext: Vec<u8>,
}

impl Call {
    /// The endpoint the request is for.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs the endpoint's handler on the decrypted request. It may block (a blocking scan), so async callers
    /// run it on a blocking thread. A handler that panics fails the request with [`HandlerError::Internal`]
    /// instead of unwinding into the transport, so the session still gets checked back in by
    /// [`Protocomm::finish`].
    pub fn run(&self) -> Result<Vec<u8>, HandlerError> {
        catch_unwind(AssertUnwindSafe(|| self.handler.handle(self.session_id, &self.plaintext)))
            .unwrap_or_else(|_| Err(HandlerError::Internal(Box::new(HandlerPanicked))))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.plaintext);
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("session", &self.session_id)
            .field("endpoint", &self.endpoint)
            .field("len", &self.plaintext.len())
            .finish_non_exhaustive()
    }
}

/// A protocomm instance: endpoints, security, sessions. It performs no I/O.
pub struct Protocomm {
    // Creation order matters: BLE assigns characteristic ids in this order.
    endpoints: Vec<(String, Endpoint)>,
    security: Option<DeviceSecurity>,
    version: Vec<u8>,
    sessions: HashMap<SessionId, SessionEntry>,
    limits: SessionLimits,
}

impl Protocomm {
    /// An instance with no endpoints.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            endpoints: Vec::new(),
            security: None,
            version: Vec::new(),
            sessions: HashMap::new(),
            limits: SessionLimits { max_sessions: limits.max_sessions.max(1), ..limits },
        }
    }

    /// Makes `name` the security endpoint with `security`; open sessions are dropped, as their keys belong to
    /// the old scheme.
    pub fn set_security(&mut self, name: &str, security: DeviceSecurity) -> Result<(), ProtocommError> {
        self.add(name, Endpoint::Security)?;
        self.security = Some(security);
        self.sessions.clear();
        Ok(())
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

    /// The configured security scheme, if any.
    pub fn security(&self) -> Option<&DeviceSecurity> {
        self.security.as_ref()
    }

    fn add(&mut self, name: &str, endpoint: Endpoint) -> Result<(), ProtocommError> {
        if self.endpoints.iter().any(|(n, _)| n == name) {
            return Err(ProtocommError::DuplicateEndpoint(name.to_owned()));
        }
        self.endpoints.push((name.to_owned(), endpoint));
        Ok(())
    }

    /// Opens (or restarts) session `id`. When the table is full it makes room by evicting, least recently used
    /// first: a session that has not finished its handshake and has no connection, then one that has not
    /// finished its handshake, then an established one whose connections have all gone (its client left), then
    /// an established one idle past the timeout. An established session that a connection still carries is
    /// never dropped for a newcomer; the newcomer is refused instead.
    pub fn open_session(&mut self, id: SessionId, now: Instant) -> Result<Opened, ProtocommError> {
        let security = self.security.as_ref().ok_or(ProtocommError::NoSecurity)?;
        let mut evicted = None;
        if !self.sessions.contains_key(&id) && self.sessions.len() >= self.limits.max_sessions {
            let idle_timeout = self.limits.idle_timeout;
            let victim = lru(&self.sessions, |e| !e.is_established() && e.connections == 0)
                .or_else(|| lru(&self.sessions, |e| !e.is_established()))
                .or_else(|| lru(&self.sessions, |e| e.connections == 0))
                .or_else(|| lru(&self.sessions, |e| now.saturating_duration_since(e.last_used) >= idle_timeout));
            match victim {
                Some(victim) => {
                    self.sessions.remove(&victim);
                    evicted = Some(victim);
                }
                None => return Err(ProtocommError::TooManySessions(self.sessions.len())),
            }
        }
        let connections = self.sessions.get(&id).map_or(0, |e| e.connections);
        self.sessions
            .insert(id, SessionEntry { session: Some(DeviceSession::new(security)), last_used: now, connections });
        Ok(Opened { evicted })
    }

    /// A transport connection now carries session `id` (an HTTP connection that opened it or presented its
    /// cookie, a BLE link). Sessions with a connection are the last to be evicted.
    pub fn attach(&mut self, id: SessionId) {
        if let Some(entry) = self.sessions.get_mut(&id) {
            entry.connections = entry.connections.saturating_add(1);
        }
    }

    /// A connection that carried session `id` has gone (or moved to another session). The session stays open
    /// (a client may come back with its cookie) but becomes a candidate for eviction.
    pub fn detach(&mut self, id: SessionId) {
        if let Some(entry) = self.sessions.get_mut(&id) {
            entry.connections = entry.connections.saturating_sub(1);
        }
    }

    /// A random session id not in use, for a transport about to open a session. Drawn big-endian from four
    /// bytes, like the ids in the esp_prov transcripts. Fails when the random source does, or keeps returning
    /// ids in use.
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

    /// Closes session `id`; returns whether it was open.
    pub fn close_session(&mut self, id: SessionId) -> bool {
        self.sessions.remove(&id).is_some()
    }

    /// Whether session `id` is open.
    pub fn has_session(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    /// Whether session `id` has completed its handshake.
    pub fn is_established(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(SessionEntry::is_established)
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handles one request completely and returns the response body: [`Protocomm::begin`], the handler, and
    /// [`Protocomm::finish`] in one call, for callers that can afford to hold `&mut self` while the handler runs.
    pub fn handle(
        &mut self,
        now: Instant,
        session: SessionId,
        endpoint: &str,
        request: &[u8],
        rng: &mut dyn SecureRandom,
    ) -> Result<Vec<u8>, ProtocommError> {
        self.begin(now, session, endpoint, request, rng)?.complete(|| self)
    }

    /// First half of a request: answers the version and security endpoints, or decrypts an ordinary
    /// endpoint's request and checks its session out until [`Protocomm::finish`].
    pub fn begin(
        &mut self,
        now: Instant,
        session: SessionId,
        endpoint: &str,
        request: &[u8],
        rng: &mut dyn SecureRandom,
    ) -> Result<Step, ProtocommError> {
        let Some((_, kind)) = self.endpoints.iter().find(|(n, _)| n == endpoint) else {
            return Err(ProtocommError::UnknownEndpoint(endpoint.to_owned()));
        };
        let security_err = |source| ProtocommError::Security { endpoint: endpoint.to_owned(), source };
        match kind {
            Endpoint::Version => Ok(Step::Reply(self.version.clone())),
            Endpoint::Security => {
                let entry = self.sessions.get_mut(&session).ok_or(ProtocommError::UnknownSession(session))?;
                let device = entry.session.as_mut().ok_or(ProtocommError::SessionBusy(session))?;
                entry.last_used = now;
                device.handle_handshake(request, rng).map(Step::Reply).map_err(security_err)
            }
            Endpoint::Ordinary(handler) => {
                let handler = handler.clone().ok_or_else(|| ProtocommError::NotRegistered(endpoint.to_owned()))?;
                // Security 0 has no keys, so like ESP it serves requests outside any handshake.
                let encrypted = self.security.as_ref().is_some_and(|s| s.version() != SecurityVersion::Sec0);
                let mut device = None;
                match self.sessions.get_mut(&session) {
                    Some(entry) => {
                        device = Some(entry.session.take().ok_or(ProtocommError::SessionBusy(session))?);
                        entry.last_used = now;
                    }
                    None if encrypted => return Err(ProtocommError::UnknownSession(session)),
                    None => {}
                }
                let mut plaintext = request.to_vec();
                if let Some(d) = device.as_mut()
                    && let Err(e) = d.decrypt(&mut plaintext)
                {
                    self.check_in(session, device);
                    return Err(security_err(e));
                }
                Ok(Step::Call(Call {
                    session_id: session,
                    endpoint: endpoint.to_owned(),
                    session: device,
                    handler,
                    plaintext,
                }))
            }
        }
    }

    /// Second half of a request: checks the session back in and encrypts the handler's response. A handler
    /// failure is returned as an error (the transport then drops the exchange, as ESP does).
    pub fn finish(
        &mut self,
        mut call: Call,
        response: Result<Vec<u8>, HandlerError>,
    ) -> Result<Vec<u8>, ProtocommError> {
        let endpoint = std::mem::take(&mut call.endpoint);
        let mut device = call.session.take();
        let result = match response {
            Err(source) => Err(ProtocommError::Handler { endpoint, source }),
            Ok(mut response) => match device.as_mut().map(|d| d.encrypt(&mut response)) {
                Some(Err(source)) => Err(ProtocommError::Security { endpoint, source }),
                _ => Ok(response),
            },
        };
        self.check_in(call.session_id, device);
        result
    }

    /// Puts a checked-out session back, unless it was closed or reopened meanwhile (then the new one stays).
    fn check_in(&mut self, id: SessionId, device: Option<DeviceSession>) {
        if let (Some(device), Some(entry)) = (device, self.sessions.get_mut(&id))
            && entry.session.is_none()
        {
            entry.session = Some(device);
        }
    }
}

impl fmt::Debug for Protocomm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protocomm")
            .field("endpoints", &self.endpoints.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("security", &self.security)
            .field("sessions", &self.sessions.len())
            .field("limits", &self.limits)
            .finish()
    }
}

fn lru(sessions: &HashMap<SessionId, SessionEntry>, eligible: impl Fn(&SessionEntry) -> bool) -> Option<SessionId> {
    sessions.iter().filter(|(_, e)| eligible(e)).min_by_key(|(id, e)| (e.last_used, **id)).map(|(id, _)| *id)
}
