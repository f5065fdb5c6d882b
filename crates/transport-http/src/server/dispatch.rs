//! One request through protocomm, synchronously: find or open the session, `begin`, run the handler, `finish`.
//!
//! The whole of it runs on a blocking thread, so neither a slow handler (a blocking scan) nor a costly handshake
//! step (SRP) stalls the async workers, and a cancelled connection task can never leave a session checked out:
//! `finish` always runs.

use std::time::Instant;

use wifiprov_proto::endpoint::{Protocomm, ProtocommError, Refusal, SessionId};
use wifiprov_proto::rng::SecureRandom;

use super::Device;
use crate::wire::{self, CookieHeader};

/// A request whose head and body have been read.
pub(super) struct Request {
    pub(super) endpoint: String,
    pub(super) body: Vec<u8>,
    pub(super) cookie: CookieHeader,
    /// The session this connection is attached to, from earlier requests.
    pub(super) conn_session: Option<SessionId>,
    pub(super) now: Instant,
}

/// What came of a request.
pub(super) struct Processed {
    /// The session the connection is attached to from now on.
    pub(super) conn_session: Option<SessionId>,
    /// The session the request ran in, if one was found or opened.
    pub(super) session: Option<SessionId>,
    pub(super) outcome: Result<Reply, Refusal>,
}

/// A response to send.
pub(super) struct Reply {
    pub(super) body: Vec<u8>,
    /// Set on the first response of a new session: the id to put in `Set-Cookie`.
    pub(super) new_session: Option<SessionId>,
}

/// How the request's session was found.
#[derive(Clone, Copy)]
struct Resolved {
    id: SessionId,
    /// Opened for this request; the response carries its cookie.
    new: bool,
}

pub(super) fn process(device: &Device, request: Request) -> Processed {
    let Request { endpoint, body, cookie, conn_session, now } = request;
    let mut protocomm = device.lock_protocomm();
    let mut rng = device.lock_rng();
    let resolved = match resolve(&mut protocomm, &mut **rng, &cookie, conn_session, now) {
        Ok(resolved) => resolved,
        Err(refusal) => return Processed { conn_session, session: None, outcome: Err(refusal) },
    };
    let id = resolved.id;
    // A session opened here is this connection's; a cookie moves the connection to the cookie's session.
    let conn_session = match (resolved.new, &cookie) {
        (true, _) | (false, CookieHeader::One(_)) => Some(id),
        (false, _) => conn_session,
    };
    let step = protocomm.begin(now, id, &endpoint, &body, &mut **rng);
    drop(rng);
    drop(protocomm);
    let result = step.and_then(|step| step.complete(|| device.lock_protocomm()));
    let outcome = match result {
        Ok(body) => Ok(Reply { body, new_session: resolved.new.then_some(id) }),
        Err(e) => {
            if resolved.new {
                // The client never learns the cookie and the connection is about to close: nobody can reach the
                // session any more, so free its slot now.
                device.lock_protocomm().close_session(id);
            }
            Err(Refusal::Protocomm(e))
        }
    };
    Processed { conn_session, session: Some(id), outcome }
}

/// Picks the request's session (see the crate documentation for the rules) or opens a new one.
fn resolve(
    protocomm: &mut Protocomm,
    rng: &mut dyn SecureRandom,
    cookie: &CookieHeader,
    conn_session: Option<SessionId>,
    now: Instant,
) -> Result<Resolved, Refusal> {
    let existing = match cookie {
        CookieHeader::One(value) => wire::cookie_session(value),
        CookieHeader::Absent => conn_session,
        CookieHeader::Several => None,
    };
    if let Some(id) = existing.filter(|id| protocomm.has_session(*id)) {
        return Ok(Resolved { id, new: false });
    }
    let id = protocomm.unused_session_id(rng).map_err(Refusal::Random)?;
    match protocomm.open_session(id, now) {
        Ok(opened) => {
            if let Some(evicted) = opened.evicted {
                tracing::debug!(%evicted, "session table full; evicted a session");
            }
            tracing::debug!(session = %id, "new session");
            Ok(Resolved { id, new: true })
        }
        // Without a security scheme there are no sessions to track: serve the request under a throwaway id.
        Err(ProtocommError::NoSecurity) => Ok(Resolved { id, new: false }),
        Err(e) => Err(Refusal::Open(e)),
    }
}
