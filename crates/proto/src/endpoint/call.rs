//! The work of one request that runs without the [`super::Protocomm`] instance: a handshake step, or a call of an
//! ordinary endpoint (decrypt, handler, encrypt). Each holds its session checked out of the table and hands it
//! back as a [`Checkout`] for [`super::Protocomm::check_in`], so that the table's owner can release its lock
//! while the expensive part (SRP arithmetic, a handler waiting for the radio) runs.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use zeroize::Zeroizing;

use super::{EndpointHandler, HandlerError, ProtocommError, SessionId};
use crate::rng::SecureRandom;
use crate::security::{DeviceSession, SecurityVersion};

/// A session taken out of the table for one request; give it back with [`super::Protocomm::check_in`]. If it is
/// lost instead (the request's task was cancelled, or panicked), close the session with
/// [`super::Protocomm::close_session`]: it cannot be used again, and a proof it carried counts as failed.
pub struct Checkout {
    pub(super) id: SessionId,
    pub(super) session: DeviceSession,
    /// The opening of the session it was taken from (see `sessions::Entry::opening`); with the id, it names the
    /// proof in flight, if any.
    pub(super) opening: u64,
    /// Whether this request is a proof attempt, in flight for the guessing limit until it is checked in.
    pub(super) proving: bool,
}

impl Checkout {
    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }
}

impl fmt::Debug for Checkout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkout").field("id", &self.id).field("session", &self.session).finish()
    }
}

/// One message of a security handshake, to be answered by [`HandshakeStep::run`].
pub struct HandshakeStep {
    pub(super) endpoint: String,
    pub(super) checkout: Checkout,
    pub(super) request: Vec<u8>,
}

impl HandshakeStep {
    /// The session the handshake runs in.
    pub fn session(&self) -> SessionId {
        self.checkout.id
    }

    /// Whether this step costs real CPU time (security 2's modular exponentiations, milliseconds each), so
    /// async callers should run it on a thread meant for blocking work.
    pub fn is_costly(&self) -> bool {
        self.checkout.session.version() == SecurityVersion::Sec2
    }

    /// Runs the step: the answer to send, and the session to check back in either way. A failure resets the
    /// session to its initial state (the client must start over), as with ESP.
    pub fn run(self, rng: &mut dyn SecureRandom) -> (Checkout, Result<Vec<u8>, ProtocommError>) {
        let Self { endpoint, mut checkout, request } = self;
        let result = checkout
            .session
            .handle_handshake(&request, rng)
            .map_err(|source| ProtocommError::Security { endpoint, source });
        (checkout, result)
    }
}

impl fmt::Debug for HandshakeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeStep")
            .field("session", &self.checkout.id)
            .field("len", &self.request.len())
            .finish_non_exhaustive()
    }
}

/// A request to an ordinary endpoint, still encrypted, with its handler. Run it with [`Call::run`].
pub struct Call {
    pub(super) endpoint: String,
    /// `None` for a security 0 request outside any session, which ESP serves too.
    pub(super) checkout: Option<Checkout>,
    pub(super) handler: Arc<dyn EndpointHandler>,
    pub(super) body: Vec<u8>,
}

impl Call {
    /// The endpoint the request is for.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The session the request runs in, if any.
    pub fn session(&self) -> Option<SessionId> {
        self.checkout.as_ref().map(|c| c.id)
    }

    /// Decrypts the request, runs the endpoint's handler, and encrypts its answer. A handler that panics fails
    /// the request with [`HandlerError::Internal`] instead of unwinding into the transport. The session comes
    /// back in every case, for [`super::Protocomm::check_in`].
    pub async fn run(self) -> (Option<Checkout>, Result<Vec<u8>, ProtocommError>) {
        let Self { endpoint, mut checkout, handler, body } = self;
        let mut plaintext = Zeroizing::new(body);
        if let Some(c) = checkout.as_mut()
            && let Err(source) = c.session.decrypt(&mut plaintext)
        {
            return (checkout, Err(ProtocommError::Security { endpoint, source }));
        }
        let session = checkout.as_ref().map(|c| c.id);
        let answered = match catch_unwind(AssertUnwindSafe(|| handler.handle(session, plaintext))) {
            Ok(future) => CatchUnwind(future).await,
            Err(_) => Err(HandlerError::Internal(Box::new(HandlerPanicked))),
        };
        let result = match answered {
            Err(source) => Err(ProtocommError::Handler { endpoint, source }),
            Ok(mut response) => match checkout.as_mut().map(|c| c.session.encrypt(&mut response)) {
                Some(Err(source)) => Err(ProtocommError::Security { endpoint, source }),
                _ => Ok(response),
            },
        };
        (checkout, result)
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("session", &self.session())
            .field("endpoint", &self.endpoint)
            .field("len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A handler panicked; its request fails like one whose handler returned an internal error.
#[derive(Debug, thiserror::Error)]
#[error("endpoint handler panicked")]
pub(super) struct HandlerPanicked;

/// Polls a handler's future, turning a panic into [`HandlerError::Internal`].
struct CatchUnwind(super::HandlerFuture);

impl Future for CatchUnwind {
    type Output = Result<Vec<u8>, HandlerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is not polled again after a panic (we return Ready), so a broken invariant inside it
        // cannot be observed.
        let future = &mut self.0;
        catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))
            .unwrap_or_else(|_| Poll::Ready(Err(HandlerError::Internal(Box::new(HandlerPanicked)))))
    }
}
