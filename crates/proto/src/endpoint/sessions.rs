//! The session table: who holds which security session, and who makes room when it is full.
//!
//! A device keeps a bounded number of sessions, and anyone in radio range can ask for one. Half-open sessions
//! (handshake not finished) and established ones have separate budgets, so that a flood of handshakes that never
//! finish cannot push out the clients that did:
//!
//! - Only a request to the security endpoint opens a session (see [`super::Protocomm::begin`]); `proto-ver`
//!   and requests that name no open session never create or evict one.
//! - A new handshake needs one of [`SessionLimits::max_handshakes`] places. When they are all taken, a
//!   half-open session makes room only if no connection carries it any more (abandoned), its handshake has
//!   stalled for [`SessionLimits::handshake_timeout`], or its peer holds other half-open sessions too (counting
//!   the one being asked for). So the one handshake a peer is running on a live connection survives whatever
//!   others send, and a peer that opens many only ever replaces its own. The victim is a session of the
//!   noisiest peer (the one holding the most half-open sessions), an abandoned one before a connected one, one
//!   between requests before one whose handshake step is running (that step's answer then names a closed
//!   session), then the one idle longest. With no candidate the newcomer is refused
//!   ([`ProtocommError::TooManySessions`]).
//! - An established session is never evicted by a request that holds no credential. When a handshake
//!   completes (the client proved its credential) and [`SessionLimits::max_sessions`] established sessions
//!   exist, the one idle longest among those no connection carries makes room (its client left, as every run of
//!   a command-line client does). If every one still has a connection, the new session is refused instead.
//! - An established session that no connection carries expires after [`SessionLimits::idle_timeout`] without
//!   a request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::guard::ProofKey;
use super::{Peer, ProofOutcome, ProtocommError, SessionId};
use crate::security::DeviceSession;

/// How many sessions a device keeps, and when one may go.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Established sessions kept at once. ESP keeps exactly one.
    pub max_sessions: usize,
    /// Half-open sessions (handshakes under way) kept at once.
    pub max_handshakes: usize,
    /// An established session that no connection carries expires after this long without a request.
    pub idle_timeout: Duration,
    /// A half-open session whose handshake made no progress for this long counts as stalled and may make room
    /// even while its connection is open.
    pub handshake_timeout: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_sessions: 8,
            max_handshakes: 8,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What [`super::Protocomm::open_session`] did to make room.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Opened {
    /// Sessions closed to make room (expired or evicted); the transport should forget them.
    pub closed: Vec<SessionId>,
    /// Set when a session closed (or restarted) here had a proof being checked: it counts as failed (persist the
    /// count; see [`super::GuessLimit`]).
    pub lost: Option<ProofOutcome>,
}

/// What [`super::Protocomm::close_session`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Closed {
    /// Set when the session had a proof being checked: it counts as failed (persist the count; see
    /// [`super::GuessLimit`]).
    pub lost: Option<ProofOutcome>,
}

/// What [`super::Protocomm::check_in`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct CheckedIn {
    /// Sessions closed to make room for a newly established one.
    pub closed: Vec<SessionId>,
    /// The session just established could not be kept (every established session still has a connection); it
    /// is closed too, and its request must be refused.
    pub refused: bool,
    /// Set when the request was a proof attempt: what it came to (persist the count when it changed; see
    /// [`super::GuessLimit`]). Not set when its session was closed or reopened while it ran: the proof counted as
    /// failed then.
    pub proof: Option<ProofOutcome>,
}

pub(super) struct Entry {
    /// `None` while a request of this session is checked out (see [`super::Checkout`]).
    pub(super) session: Option<DeviceSession>,
    /// Whether the handshake has completed, as of the last check-in.
    pub(super) established: bool,
    /// The peer whose request opened it.
    pub(super) peer: Peer,
    pub(super) last_used: Instant,
    /// Transport connections (or links) currently carrying this session.
    pub(super) connections: u32,
    /// Which opening of its id this is: a request checked out of an earlier opening (closed or reopened since)
    /// must not be checked back in here.
    pub(super) opening: u64,
}

impl Entry {
    fn is_checked_out(&self) -> bool {
        self.session.is_none()
    }
}

/// The open sessions of one protocomm instance.
pub(super) struct Sessions {
    entries: HashMap<SessionId, Entry>,
    limits: SessionLimits,
    /// Sessions opened so far, numbering each opening.
    openings: u64,
}

impl Sessions {
    pub(super) fn new(limits: SessionLimits) -> Self {
        let limits = SessionLimits {
            max_sessions: limits.max_sessions.max(1),
            max_handshakes: limits.max_handshakes.max(1),
            ..limits
        };
        Self { entries: HashMap::new(), limits, openings: 0 }
    }

    pub(super) fn limits(&self) -> SessionLimits {
        self.limits
    }

    pub(super) fn get_mut(&mut self, id: SessionId) -> Option<&mut Entry> {
        self.entries.get_mut(&id)
    }

    pub(super) fn get(&self, id: SessionId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    pub(super) fn contains(&self, id: SessionId) -> bool {
        self.entries.contains_key(&id)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether session `id` is open, between requests, and waiting for its client's proof.
    pub(super) fn awaits_proof(&self, id: SessionId) -> bool {
        self.entries.get(&id).and_then(|e| e.session.as_ref()).is_some_and(DeviceSession::awaits_proof)
    }

    /// Closes every session; returns each with its opening.
    pub(super) fn clear(&mut self) -> Vec<ProofKey> {
        self.entries.drain().map(|(id, e)| (id, e.opening)).collect()
    }

    /// Closes session `id`; returns its opening if it was open.
    pub(super) fn remove(&mut self, id: SessionId) -> Option<u64> {
        self.entries.remove(&id).map(|e| e.opening)
    }

    /// Opens session `id` for `peer` (replacing it if open), making room among the half-open sessions by the
    /// rules of the module documentation. Also returns every session closed or replaced, with its opening.
    pub(super) fn open(
        &mut self,
        id: SessionId,
        peer: Peer,
        session: DeviceSession,
        now: Instant,
    ) -> Result<(Opened, Vec<ProofKey>), ProtocommError> {
        let mut removed = Vec::new();
        let mut opened = Opened { closed: self.expire(now, &mut removed), lost: None };
        let replaced = self.entries.remove(&id);
        if let Some(entry) = &replaced {
            removed.push((id, entry.opening));
        }
        let connections = replaced.as_ref().map_or(0, |e| e.connections);
        let half_open = self.entries.values().filter(|e| !e.established).count();
        if replaced.is_none() && half_open >= self.limits.max_handshakes {
            let victim = self.victim(peer, now).ok_or(ProtocommError::TooManySessions(self.entries.len()))?;
            if let Some(entry) = self.entries.remove(&victim) {
                removed.push((victim, entry.opening));
            }
            opened.closed.push(victim);
        }
        let established = session.is_established();
        self.openings += 1;
        let opening = self.openings;
        self.entries
            .insert(id, Entry { session: Some(session), established, peer, last_used: now, connections, opening });
        Ok((opened, removed))
    }

    /// Puts a checked-out session back, unless it was closed or reopened meanwhile. A session that has just
    /// completed its handshake needs a place among the established ones (see the module documentation).
    pub(super) fn check_in(&mut self, id: SessionId, opening: u64, session: DeviceSession) -> CheckedIn {
        let mut result = CheckedIn::default();
        let Some(entry) = self.entries.get(&id).filter(|e| e.is_checked_out() && e.opening == opening) else {
            return result;
        };
        let established = session.is_established();
        if established && !entry.established {
            let others = self.entries.iter().filter(|(other, e)| **other != id && e.established).count();
            if others >= self.limits.max_sessions {
                match self.idlest_unconnected() {
                    Some(victim) => {
                        self.entries.remove(&victim);
                        result.closed.push(victim);
                    }
                    None => {
                        self.entries.remove(&id);
                        result.closed.push(id);
                        result.refused = true;
                        return result;
                    }
                }
            }
        }
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.established = established;
            entry.session = Some(session);
        }
        result
    }

    /// The established session idle longest among those no connection carries.
    fn idlest_unconnected(&self) -> Option<SessionId> {
        self.entries
            .iter()
            .filter(|(_, e)| e.established && e.connections == 0 && !e.is_checked_out())
            .min_by_key(|(id, e)| (e.last_used, **id))
            .map(|(id, _)| *id)
    }

    /// Closes established sessions that no connection carries and that have been idle past the timeout; adds
    /// each to `removed` with its opening.
    fn expire(&mut self, now: Instant, removed: &mut Vec<ProofKey>) -> Vec<SessionId> {
        let idle = self.limits.idle_timeout;
        let expired: Vec<SessionId> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.established
                    && e.connections == 0
                    && !e.is_checked_out()
                    && now.saturating_duration_since(e.last_used) >= idle
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            if let Some(entry) = self.entries.remove(id) {
                removed.push((*id, entry.opening));
            }
        }
        expired
    }

    /// The half-open session to evict for a newcomer from `newcomer`, if any may go.
    fn victim(&self, newcomer: Peer, now: Instant) -> Option<SessionId> {
        let mut half_open: HashMap<Peer, usize> = HashMap::new();
        for entry in self.entries.values().filter(|e| !e.established) {
            *half_open.entry(entry.peer).or_default() += 1;
        }
        *half_open.entry(newcomer).or_default() += 1;
        let held = |peer: &Peer| half_open.get(peer).copied().unwrap_or_default();
        let stalled = self.limits.handshake_timeout;
        self.entries
            .iter()
            .filter(|(_, e)| !e.established)
            .filter(|(_, e)| {
                e.connections == 0 || held(&e.peer) > 1 || now.saturating_duration_since(e.last_used) >= stalled
            })
            // Noisiest peer first, then abandoned before connected, then one that is not in the middle of a request
            // (a flood keeps its own handshakes busy; those go too, last), then idle longest; the id breaks ties so
            // the choice does not depend on the map's order.
            .max_by_key(|(id, e)| {
                (
                    held(&e.peer),
                    e.connections == 0,
                    !e.is_checked_out(),
                    std::cmp::Reverse(e.last_used),
                    std::cmp::Reverse(**id),
                )
            })
            .map(|(id, _)| *id)
    }
}
