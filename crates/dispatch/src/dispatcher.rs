//! One request through protocomm, from any transport.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{Instrument as _, debug, error, info_span, warn};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::endpoint::{
    Checkout, HandlerError, Lockout, Peer, ProofOutcome, Protocomm, ProtocommError, SessionId, Step, retry_after_secs,
};
use wifiprov_proto::rng::{RandomUnavailable, SecureRandom};

use crate::peer_warn;
use crate::warn::WarnLimiter;

type SharedRandom = Arc<Mutex<Box<dyn SecureRandom + Send>>>;
type ClosedHook = Box<dyn Fn(SessionId) + Send + Sync>;
type Recording = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the device's count of failed proofs goes (see [`wifiprov_proto::endpoint::GuessLimit`]): persisted, so
/// that a restart does not reset it, and reported. The count is of settled failures: it changes when a proof
/// fails (or is lost with its session) and when a right one forgives earlier failures, and only then is the
/// ledger told.
pub trait ProofLedger: Send + Sync {
    /// A failure started a wait. The dispatcher has logged it; publish it (an event).
    fn locked(&self, lockout: Lockout);

    /// The count of failed proofs in a row is now `failures` (0 after a success that forgave earlier failures).
    /// Called with the protocomm instance locked, so calls come in the order the counts were reached: do the
    /// slow part (the disk) in the returned future. A checked proof's answer waits for that future, so a guesser
    /// learns a proof was wrong only once the count is on disk, and cutting the power mid-guess gains it
    /// nothing; a proof lost with its session (no answer to hold) has it run in the background.
    fn record(&self, failures: u32) -> Recording;
}

/// A proof's outcome on its way to the ledger: the recording is started while the protocomm instance is still
/// locked (see [`ProofLedger::record`]); the lockout is logged once the lock is released.
#[must_use]
#[derive(Default)]
struct Settled {
    lockout: Option<Lockout>,
    recording: Option<Recording>,
}

/// A request as a transport received it.
#[derive(Debug)]
pub struct Request {
    /// Who sent it.
    pub peer: Peer,
    /// The session the transport associates with it (a cookie, the connection's, the link's); it counts only if
    /// that session is open.
    pub claim: Option<SessionId>,
    /// The endpoint name.
    pub endpoint: String,
    /// The raw body.
    pub body: Vec<u8>,
}

/// What came of a request.
#[derive(Debug)]
pub struct Answer {
    /// The session the request ran in; the transport associates its connection with it from now on.
    pub session: Option<SessionId>,
    /// Whether the request opened that session: the answer must tell the client its id (HTTP: `Set-Cookie`).
    pub opened: bool,
    /// The answer to send, or why the transport must drop the exchange without one. Already logged.
    pub result: Result<Vec<u8>, ProtocommError>,
}

/// The protocomm service shared by every transport of a device. See the crate documentation.
pub struct Dispatcher {
    // Lock order: protocomm, then random source. Neither is held across an `.await` or a handshake step.
    protocomm: Mutex<Protocomm>,
    rng: SharedRandom,
    warnings: WarnLimiter,
    closed: Option<ClosedHook>,
    ledger: Option<Arc<dyn ProofLedger>>,
}

/// The random source as a handshake step sees it: locked for each draw only, so the step's arithmetic runs
/// outside any lock that another session needs.
struct DrawEach(SharedRandom);

impl SecureRandom for DrawEach {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomUnavailable> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).fill(dest)
    }
}

/// A session checked out for one request. Unless it is checked back in, dropping this closes the session: the
/// request's task was cancelled or panicked, and the session's state went with it.
struct Held<'a> {
    dispatcher: &'a Dispatcher,
    session: Option<SessionId>,
}

impl Held<'_> {
    /// Gives the session back; `false` when the table refused to keep it (a newly established session with no
    /// room among the established ones), so the request must be refused too. A proof's outcome is recorded
    /// before this returns.
    async fn check_in(mut self, checkout: Option<Checkout>) -> bool {
        self.session = None;
        let Some(checkout) = checkout else { return true };
        let (checked_in, settled) = {
            let mut protocomm = self.dispatcher.lock();
            let checked_in = protocomm.check_in(checkout);
            let settled = self.dispatcher.settle(checked_in.proof);
            (checked_in, settled)
        };
        self.dispatcher.notify_closed(&checked_in.closed);
        self.dispatcher.finish(settled).await;
        !checked_in.refused
    }

    /// The request ended without its session (its step panicked): closes the session, recording a proof it
    /// carried as failed before this returns.
    async fn close(mut self) {
        if let Some(id) = self.session.take() {
            let settled = self.dispatcher.close_and_settle(id);
            self.dispatcher.finish(settled).await;
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            debug!(session = %id, "request ended without returning its session; closing it");
            // A proof it carried counts as failed; with no answer to hold back, it is recorded in the background.
            self.dispatcher.close_session(id);
        }
    }
}

/// A handshake step's thread ended without an answer.
#[derive(Debug, thiserror::Error)]
#[error("handshake step failed: {0}")]
struct StepFailed(String);

impl Dispatcher {
    /// A dispatcher serving `protocomm`, drawing session ids and handshake secrets from `rng` (the OS random
    /// source in production: `wifiprov_proto::rng::OsRandom`).
    pub fn new(protocomm: Protocomm, rng: Box<dyn SecureRandom + Send>) -> Self {
        Self {
            protocomm: Mutex::new(protocomm),
            rng: Arc::new(Mutex::new(rng)),
            warnings: WarnLimiter::default(),
            closed: None,
            ledger: None,
        }
    }

    /// Reports lockouts to `ledger` and has it persist the count of failed proofs (see [`ProofLedger`]).
    #[must_use]
    pub fn with_proof_ledger(mut self, ledger: Arc<dyn ProofLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Logs a wait that a failed proof (or a count restored at start) started, once, and reports it.
    pub fn report_lockout(&self, lockout: Lockout) {
        warn!(
            failures = lockout.failures,
            wait_secs = retry_after_secs(lockout.wait),
            "too many wrong proofs of possession or passwords; refusing handshakes for {} s",
            retry_after_secs(lockout.wait)
        );
        if let Some(ledger) = &self.ledger {
            ledger.locked(lockout);
        }
    }

    /// Passes a settled proof on: the count to the ledger when it changed. Call with the protocomm instance
    /// locked, then [`Dispatcher::finish`] (or [`Dispatcher::finish_in_background`]) the result without it.
    fn settle(&self, outcome: Option<ProofOutcome>) -> Settled {
        let (failures, lockout) = match outcome {
            None | Some(ProofOutcome::Succeeded { forgiven: 0 }) => return Settled::default(),
            Some(ProofOutcome::Succeeded { forgiven }) => {
                debug!(forgiven, "a right proof forgave earlier failures");
                (0, None)
            }
            Some(ProofOutcome::Failed { failures, lockout }) => (failures, lockout),
        };
        Settled { lockout, recording: self.ledger.as_ref().map(|ledger| ledger.record(failures)) }
    }

    /// Reports a settled proof's lockout, then waits until the ledger has its count.
    async fn finish(&self, settled: Settled) {
        if let Some(lockout) = settled.lockout {
            self.report_lockout(lockout);
        }
        if let Some(recording) = settled.recording {
            recording.await;
        }
    }

    /// Reports a settled proof's lockout, and lets the ledger record its count in the background (where nothing
    /// can wait for it: a session closed by a transport, or by a cancelled request).
    fn finish_in_background(&self, settled: Settled) {
        if let Some(lockout) = settled.lockout {
            self.report_lockout(lockout);
        }
        let Some(recording) = settled.recording else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(recording)),
            // Only when the runtime is already gone; the count stays in memory and goes with the next record.
            Err(_) => error!("cannot record a proof lost with its session: no runtime"),
        }
    }

    /// Closes session `id`, telling the close hook; a proof it carried is settled as failed.
    fn close_and_settle(&self, id: SessionId) -> Settled {
        let mut protocomm = self.lock();
        let Some(closed) = protocomm.close_session(id) else { return Settled::default() };
        let settled = self.settle(closed.lost);
        drop(protocomm);
        if closed.lost.is_some() {
            debug!(session = %id, "a proof was being checked in the closed session; it counts as failed");
        }
        self.notify_closed(&[id]);
        settled
    }

    /// Calls `hook` with the id of every session that closes (evicted, expired, closed by a transport, lost with
    /// a cancelled request), once, after the table lock is released.
    #[must_use]
    pub fn on_session_closed(mut self, hook: impl Fn(SessionId) + Send + Sync + 'static) -> Self {
        self.closed = Some(Box::new(hook));
        self
    }

    /// Runs `f` on the protocomm instance (to register handlers, list endpoints). Do not block in `f`: requests
    /// of every client wait for it.
    pub fn with_protocomm<R>(&self, f: impl FnOnce(&mut Protocomm) -> R) -> R {
        f(&mut self.lock())
    }

    /// The endpoint names, in creation order (BLE lays its characteristics out in this order).
    pub fn endpoint_names(&self) -> Vec<String> {
        self.lock().endpoint_names().map(str::to_owned).collect()
    }

    /// Whether an endpoint of this name exists.
    pub fn has_endpoint(&self, name: &str) -> bool {
        self.lock().has_endpoint(name)
    }

    /// The rate limit for warnings about misbehaving peers (see [`crate::peer_warn!`]), shared by every
    /// transport so that a flood on one cannot flood the journal through another.
    pub fn warnings(&self) -> &WarnLimiter {
        &self.warnings
    }

    /// A connection now carries session `id`.
    pub fn attach(&self, id: SessionId) {
        self.lock().attach(id);
    }

    /// A connection that carried session `id` has gone.
    pub fn detach(&self, id: SessionId) {
        self.lock().detach(id);
    }

    /// Closes session `id` (its link went away); the close hook hears of it. A proof being checked in it counts
    /// as failed, and is recorded in the background.
    pub fn close_session(&self, id: SessionId) {
        let settled = self.close_and_settle(id);
        self.finish_in_background(settled);
    }

    fn lock(&self) -> MutexGuard<'_, Protocomm> {
        // A panic while the lock was held can only come from a bug in protocomm itself; its tables are still
        // consistent enough to go on, which beats refusing every client from now on.
        self.protocomm.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify_closed(&self, ids: &[SessionId]) {
        for id in ids {
            debug!(session = %id, "session closed");
            if let Some(hook) = &self.closed {
                hook(*id);
            }
        }
    }

    /// Runs one request and logs a refusal; the transport answers with [`Answer::result`] or drops the exchange
    /// (HTTP: closes the connection without a byte; BLE: an ATT error), as ESP does. `reaction` completes the
    /// refusal's log line ("closing without response", "disconnecting").
    pub async fn dispatch(&self, request: Request, reaction: &'static str) -> Answer {
        let span = info_span!("request", endpoint = %request.endpoint, session = tracing::field::Empty);
        let endpoint = request.endpoint.clone();
        let recorder = span.clone();
        async {
            let answer = self.run(request).await;
            if let Some(session) = answer.session {
                // Recorded once per request span, so a log line names its session once however many requests
                // its connection carried.
                recorder.record("session", session.0);
            }
            if let Err(refusal) = &answer.result {
                let error = ErrorChain(refusal);
                if matches!(refusal, ProtocommError::LockedOut { .. } | ProtocommError::ProofInFlight { .. }) {
                    // The lockout itself was logged once when it began; every refusal during it would be noise, and
                    // so would a proof refused while another one is checked.
                    debug!(%endpoint, %error, "request refused; {reaction}");
                } else if refusal.is_peer_fault() {
                    peer_warn!(self, %endpoint, %error, "request refused; {reaction}");
                } else {
                    error!(%endpoint, %error, "cannot serve request; {reaction}");
                }
            }
            answer
        }
        .instrument(span)
        .await
    }

    async fn run(&self, request: Request) -> Answer {
        let Request { peer, claim, endpoint, body } = request;
        let now = tokio::time::Instant::now().into_std();
        let begun = {
            let mut protocomm = self.lock();
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            let begun = protocomm.begin(now, peer, claim, &endpoint, body, &mut **rng);
            drop(rng);
            // Opening a session may have closed another one in the middle of its proof.
            begun.map(|begun| {
                let settled = self.settle(begun.opened.as_ref().and_then(|opened| opened.lost));
                (begun, settled)
            })
        };
        let (begun, settled) = match begun {
            Ok(begun) => begun,
            Err(e) => return Answer { session: None, opened: false, result: Err(e) },
        };
        let opened = match begun.opened {
            Some(opened) => {
                self.notify_closed(&opened.closed);
                if let Some(id) = begun.session {
                    debug!(session = %id, closed = ?opened.closed, "new session");
                }
                true
            }
            None => false,
        };
        // A proof lost with a session closed to make room is another request's: nothing here waits for it (and
        // nothing may be awaited before the step's session is held, or a cancelled task would leave it checked
        // out).
        self.finish_in_background(settled);
        let result = match begun.step {
            Step::Reply(reply) => Ok(reply),
            Step::Handshake(step) => {
                let held = Held { dispatcher: self, session: Some(step.session()) };
                let rng = DrawEach(self.rng.clone());
                let (checkout, result) = if step.is_costly() {
                    match tokio::task::spawn_blocking(move || {
                        let mut rng = rng;
                        step.run(&mut rng)
                    })
                    .await
                    {
                        Ok((checkout, result)) => (Some(checkout), result),
                        // The step panicked or was cancelled: its session is gone (`held` closes it).
                        Err(e) => (None, Err(internal(&endpoint, StepFailed(e.to_string())))),
                    }
                } else {
                    let mut rng = rng;
                    let (checkout, result) = step.run(&mut rng);
                    (Some(checkout), result)
                };
                if checkout.is_none() {
                    held.close().await;
                    result
                } else if held.check_in(checkout).await {
                    result
                } else {
                    Err(ProtocommError::TooManySessions(self.lock().session_count()))
                }
            }
            Step::Call(call) => {
                let held = Held { dispatcher: self, session: call.session() };
                let (checkout, result) = call.run().await;
                held.check_in(checkout).await;
                result
            }
        };
        if opened
            && result.is_err()
            && let Some(id) = begun.session
        {
            // The client never learns the new session's id, so nobody can use it: free its place now.
            self.close_session(id);
            return Answer { session: None, opened: false, result };
        }
        Answer { session: begun.session, opened, result }
    }
}

fn internal(endpoint: &str, error: impl std::error::Error + Send + Sync + 'static) -> ProtocommError {
    ProtocommError::Handler { endpoint: endpoint.to_owned(), source: HandlerError::Internal(Box::new(error)) }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Dispatcher");
        // `try_lock`: formatting must not deadlock when done from inside `with_protocomm`.
        match self.protocomm.try_lock() {
            Ok(protocomm) => d.field("protocomm", &*protocomm),
            Err(_) => d.field("protocomm", &"<locked>"),
        };
        d.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
