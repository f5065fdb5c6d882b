//! Protocomm served to many peers at once: the part of a device's protocomm service that every transport
//! shares, so that each transport only moves bytes and maps its connections (or links) to sessions.
//!
//! A [`Dispatcher`] owns the [`Protocomm`](wifiprov_proto::endpoint::Protocomm) instance (endpoints and session
//! table) and the random source, and runs each request:
//!
//! - the session table decides who gets a session and who makes room (see
//!   [`SessionLimits`](wifiprov_proto::endpoint::SessionLimits));
//! - the table is locked only to look up and check sessions in and out; a handshake step (security 2's
//!   modular exponentiations) runs on a blocking thread, and an endpoint handler (which may wait for the radio)
//!   runs as a future, both without the lock;
//! - a handler that panics fails its request, and a request whose task is cancelled closes its session instead
//!   of leaving it checked out;
//! - a refused request is logged once, at `warn` (rate-limited) when the peer is to blame and at `error` when the
//!   device is, in a span that names the request's session once.
//!
//! Transports tell it which sessions still have a live connection ([`Dispatcher::attach`],
//! [`Dispatcher::detach`]), and it tells its owner when a session closes ([`Dispatcher::on_session_closed`]),
//! so that whatever belongs to the session (pending credentials) goes with it.
#![forbid(unsafe_code)]

mod dispatcher;
mod warn;

// Public interface.
pub use dispatcher::{Answer, Dispatcher, ProofLedger, Request};
pub use warn::WarnLimiter;

#[doc(hidden)]
pub use tracing as __tracing;

/// Logs peer misbehaviour at `warn`, or at `debug` once the dispatcher's rate limit is reached, so that a flood
/// of bad requests cannot flood the journal: `peer_warn!(dispatcher, field = value, "message")`.
#[macro_export]
macro_rules! peer_warn {
    ($dispatcher:expr, $($arg:tt)+) => {
        if $dispatcher.warnings().allow() {
            $crate::__tracing::warn!($($arg)+);
        } else {
            $crate::__tracing::debug!($($arg)+);
        }
    };
}
