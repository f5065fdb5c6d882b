#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::oneshot;
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::Plaintext;
use wifiprov_proto::endpoint::{EndpointHandler, HandlerFuture, SessionLimits, names};
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{
    ClientSecurity, ClientSession, DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier,
};
use wifiprov_testkit::SeededRandom;

use super::*;

const A: Peer = Peer::new(1);
const B: Peer = Peer::new(2);

/// Answers once its gate opens.
struct Gated(Mutex<Option<oneshot::Receiver<()>>>);

impl EndpointHandler for Gated {
    fn handle(&self, _: Option<SessionId>, _: Plaintext) -> HandlerFuture {
        let gate = self.0.lock().unwrap().take();
        Box::pin(async move {
            if let Some(gate) = gate {
                let _ = gate.await;
            }
            Ok(b"opened".to_vec())
        })
    }
}

fn dispatcher(max_sessions: usize, closed: Arc<Mutex<Vec<SessionId>>>) -> (Dispatcher, oneshot::Sender<()>) {
    dispatcher_with(danger::sec0(), max_sessions, closed)
}

fn dispatcher_with(
    security: DeviceSecurity,
    max_sessions: usize,
    closed: Arc<Mutex<Vec<SessionId>>>,
) -> (Dispatcher, oneshot::Sender<()>) {
    let limits = SessionLimits { max_sessions, max_handshakes: max_sessions, ..SessionLimits::default() };
    let mut pc = Protocomm::new(limits);
    pc.set_version(names::PROTO_VER, "{}").unwrap();
    let _ = pc.set_security(names::PROV_SESSION, security).unwrap();
    let (open, gate) = oneshot::channel();
    pc.add_endpoint("custom-gated", Arc::new(Gated(Mutex::new(Some(gate))))).unwrap();
    let echo = |_: Option<SessionId>, r: &[u8]| -> Result<Vec<u8>, HandlerError> { Ok(r.to_vec()) };
    pc.add_endpoint("custom-echo", Arc::new(echo)).unwrap();
    let d = Dispatcher::new(pc, Box::new(SeededRandom::new(1)))
        .on_session_closed(move |id| closed.lock().unwrap().push(id));
    (d, open)
}

fn request(peer: Peer, claim: Option<SessionId>, endpoint: &str, body: &[u8]) -> Request {
    Request { peer, claim, endpoint: endpoint.to_owned(), body: body.to_vec() }
}

/// Opens a security 0 session for `peer`.
async fn session(d: &Dispatcher, peer: Peer) -> SessionId {
    let cmd0 = ClientSession::new(ClientSecurity::sec0()).start(&mut SeededRandom::new(2)).unwrap();
    let answer = d.dispatch(request(peer, None, names::PROV_SESSION, &cmd0), "closing").await;
    assert!(answer.opened && answer.result.is_ok(), "{answer:?}");
    answer.session.unwrap()
}

#[tokio::test]
async fn a_waiting_handler_holds_nothing_other_sessions_need() {
    let closed = Arc::default();
    let (d, open) = dispatcher(4, closed);
    let d = Arc::new(d);
    let a = session(&d, A).await;
    let b = session(&d, B).await;
    let waiting = tokio::spawn({
        let d = d.clone();
        async move { d.dispatch(request(A, Some(a), "custom-gated", b"x"), "closing").await }
    });
    // Let A's request reach its handler.
    tokio::task::yield_now().await;
    // While A's handler waits, B is served, and so is proto-ver.
    let answer = d.dispatch(request(B, Some(b), "custom-echo", b"b"), "closing").await;
    assert_eq!(answer.result.unwrap(), b"b");
    assert!(d.dispatch(request(B, None, names::PROTO_VER, b"-"), "closing").await.result.is_ok());
    // A's own session is busy until its request ends: requests of one session are strictly ordered.
    let busy = d.dispatch(request(A, Some(a), "custom-echo", b"a"), "closing").await;
    assert!(matches!(busy.result, Err(ProtocommError::SessionBusy(_))), "{busy:?}");
    open.send(()).unwrap();
    assert_eq!(waiting.await.unwrap().result.unwrap(), b"opened");
    assert_eq!(d.dispatch(request(A, Some(a), "custom-echo", b"a"), "closing").await.result.unwrap(), b"a");
}

#[tokio::test]
async fn a_cancelled_request_closes_its_session_and_says_so() {
    let closed: Arc<Mutex<Vec<SessionId>>> = Arc::default();
    let (d, _open) = dispatcher(4, closed.clone());
    let a = session(&d, A).await;
    let gated = d.dispatch(request(A, Some(a), "custom-gated", b"x"), "closing");
    // The transport's task goes away mid-request (shutdown, a reclaimed connection).
    assert!(tokio::time::timeout(Duration::from_millis(10), gated).await.is_err());
    assert_eq!(*closed.lock().unwrap(), [a]);
    assert!(!d.with_protocomm(|p| p.has_session(a)), "never left checked out");
}

#[tokio::test]
async fn sessions_closed_to_make_room_or_refused_are_reported() {
    let closed: Arc<Mutex<Vec<SessionId>>> = Arc::default();
    let pop = || ProofOfPossession::from("pop");
    let (d, _open) = dispatcher_with(DeviceSecurity::sec1(pop()), 1, closed.clone());
    let half_open = |peer| {
        let body = ClientSession::new(ClientSecurity::sec1(pop())).start(&mut SeededRandom::new(2)).unwrap();
        // Only the first handshake message: the session stays half-open, and with no connection it is abandoned.
        let d = &d;
        async move { d.dispatch(request(peer, None, names::PROV_SESSION, &body), "closing").await.session.unwrap() }
    };
    let first = half_open(A).await;
    let second = half_open(B).await;
    assert_ne!(first, second);
    assert_eq!(*closed.lock().unwrap(), [first], "evicted for the newcomer");
    // A first handshake message that fails closes the session it opened: nobody learns its id.
    d.close_session(second);
    let refused = d.dispatch(request(A, None, names::PROV_SESSION, b"\xff"), "closing").await;
    assert!(refused.result.is_err() && refused.session.is_none() && !refused.opened);
    assert_eq!(d.with_protocomm(|p| p.session_count()), 0);
    assert_eq!(closed.lock().unwrap().len(), 3);
}

/// What the dispatcher told its ledger: counts recorded (when `record` was called) and lockouts.
#[derive(Default)]
struct Ledger {
    records: Mutex<Vec<u32>>,
    lockouts: Mutex<Vec<Lockout>>,
}

impl ProofLedger for Ledger {
    fn locked(&self, lockout: Lockout) {
        self.lockouts.lock().unwrap().push(lockout);
    }

    fn record(&self, failures: u32) -> Recording {
        self.records.lock().unwrap().push(failures);
        Box::pin(std::future::ready(()))
    }
}

const USER: &str = "wifiprov";
const PASSWORD: &str = "right-password";

/// A security 2 device (its proofs are checked on a blocking thread, so they can be in flight together) with a
/// recording ledger.
fn sec2_dispatcher(max_sessions: usize) -> (Dispatcher, Arc<Ledger>) {
    let creds = generate_salt_verifier(USER.as_bytes(), &Password::from(PASSWORD), 16, &mut SeededRandom::new(3));
    let creds = creds.unwrap();
    let verifier = Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap());
    let (d, _open) = dispatcher_with(DeviceSecurity::sec2(verifier, Sec2Patch::Counter), max_sessions, Arc::default());
    let ledger = Arc::new(Ledger::default());
    (d.with_proof_ledger(ledger.clone()), ledger)
}

/// A security 2 client with `password` that has sent its first message: its session and its proof.
async fn up_to_proof(d: &Dispatcher, password: &str, seed: u64) -> (SessionId, Vec<u8>) {
    let mut rng = SeededRandom::new(seed);
    let mut client = ClientSession::new(ClientSecurity::sec2(USER, Password::from(password), Sec2Patch::Counter));
    let cmd0 = client.start(&mut rng).unwrap();
    let answer = d.dispatch(request(A, None, names::PROV_SESSION, &cmd0), "closing").await;
    let proof = client.handle_response(&answer.result.unwrap(), &mut rng).unwrap().unwrap();
    (answer.session.unwrap(), proof)
}

/// Runs `test` on a runtime (clock paused) with a single blocking thread, which [`hold_blocking_thread`] can
/// occupy: security 2 handshake steps run there, so while it is held, proofs begun stay in flight.
fn with_one_blocking_thread<F: Future>(test: impl FnOnce() -> F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(test())
}

/// Occupies the runtime's one blocking thread until the returned sender is dropped.
fn hold_blocking_thread() -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    drop(tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    }));
    release
}

/// Polls `future` once: far enough for a proof to be taken up and its check queued for the blocking thread.
fn poll_once<F: Future>(future: &mut Pin<Box<F>>) -> Poll<F::Output> {
    future.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn in_flight(d: &Dispatcher) -> usize {
    d.with_protocomm(|p| p.proofs_in_flight())
}

/// Issue #12: eight right proofs in flight at once (several clients, a benchmark's flood of correct handshakes)
/// all succeed, none is locked out, and the count is never recorded (the daemon never writes its file).
#[test]
fn r12_right_proofs_in_flight_together_are_never_locked_out_or_recorded() {
    with_one_blocking_thread(|| async {
        let (d, ledger) = sec2_dispatcher(8);
        let mut sessions = Vec::new();
        for seed in 0..8 {
            sessions.push(up_to_proof(&d, PASSWORD, 10 + seed).await);
        }
        let release = hold_blocking_thread();
        let mut proofs = Vec::new();
        // As many as there are free failures are checked at once; the others are asked to retry (busy).
        for (session, proof) in sessions.iter().take(5) {
            let mut proving = Box::pin(d.dispatch(request(A, Some(*session), names::PROV_SESSION, proof), "closing"));
            assert!(poll_once(&mut proving).is_pending(), "the proof waits for the blocking thread");
            proofs.push(proving);
        }
        for (session, proof) in sessions.iter().skip(5) {
            let busy = d.dispatch(request(A, Some(*session), names::PROV_SESSION, proof), "closing").await;
            assert!(matches!(busy.result, Err(ProtocommError::ProofInFlight { .. })), "{busy:?}");
        }
        assert_eq!(in_flight(&d), 5);
        drop(release);
        for proving in proofs {
            let answer = proving.await;
            assert!(answer.result.is_ok(), "{answer:?}");
        }
        for (session, proof) in sessions.iter().skip(5) {
            let retried = d.dispatch(request(A, Some(*session), names::PROV_SESSION, proof), "closing").await;
            assert!(retried.result.is_ok(), "a retry succeeds: {retried:?}");
        }
        assert_eq!((in_flight(&d), d.with_protocomm(|p| p.failed_proofs())), (0, 0));
        assert!(ledger.records.lock().unwrap().is_empty(), "nothing to write");
        assert!(ledger.lockouts.lock().unwrap().is_empty());
    });
}

/// Issue #12: beyond the free failures a second proof in flight is refused as busy, not locked out; the first
/// one's failure is recorded and starts the wait, reported once.
#[test]
fn r12_beyond_the_free_failures_a_second_proof_in_flight_is_refused_as_busy() {
    with_one_blocking_thread(|| async {
        let (d, ledger) = sec2_dispatcher(8);
        let _ = d.with_protocomm(|p| p.restore_failed_proofs(5, tokio::time::Instant::now().into_std()));
        tokio::time::advance(Duration::from_secs(1)).await;
        let (a, wrong) = up_to_proof(&d, "wrong-password", 10).await;
        let (b, right) = up_to_proof(&d, PASSWORD, 11).await;
        let release = hold_blocking_thread();
        let mut first = Box::pin(d.dispatch(request(A, Some(a), names::PROV_SESSION, &wrong), "closing"));
        assert!(poll_once(&mut first).is_pending());
        let busy = d.dispatch(request(B, Some(b), names::PROV_SESSION, &right), "closing").await;
        assert!(matches!(busy.result, Err(ProtocommError::ProofInFlight { .. })), "{busy:?}");
        assert!(ledger.records.lock().unwrap().is_empty() && ledger.lockouts.lock().unwrap().is_empty());
        drop(release);
        assert!(first.await.result.is_err());
        assert_eq!(*ledger.records.lock().unwrap(), [6]);
        assert_eq!(*ledger.lockouts.lock().unwrap(), [Lockout { failures: 6, wait: Duration::from_secs(2) }]);
        let locked = d.dispatch(request(B, Some(b), names::PROV_SESSION, &right), "closing").await;
        assert!(matches!(locked.result, Err(ProtocommError::LockedOut { .. })), "{locked:?}");
    });
}

/// Issue #12: a proof whose request is cancelled mid-check (its session closes with it) counts as failed, and
/// the ledger is told, so that the count is persisted; a wait it starts is reported.
#[test]
fn r12_a_proof_cancelled_mid_check_counts_as_failed_and_is_recorded() {
    with_one_blocking_thread(|| async {
        let (d, ledger) = sec2_dispatcher(8);
        let (a, proof) = up_to_proof(&d, PASSWORD, 10).await;
        let release = hold_blocking_thread();
        let mut proving = Box::pin(d.dispatch(request(A, Some(a), names::PROV_SESSION, &proof), "closing"));
        assert!(poll_once(&mut proving).is_pending());
        drop(proving);
        assert!(!d.with_protocomm(|p| p.has_session(a)));
        assert_eq!((in_flight(&d), d.with_protocomm(|p| p.failed_proofs())), (0, 1));
        assert_eq!(*ledger.records.lock().unwrap(), [1], "even a right proof, once lost");
        drop(release);

        // Past the free failures, a transport closing the session (a BLE link gone) starts the wait.
        let (b, proof) = up_to_proof(&d, "wrong-password", 11).await;
        let release = hold_blocking_thread();
        let _ = d.with_protocomm(|p| p.restore_failed_proofs(4, tokio::time::Instant::now().into_std()));
        let mut proving = Box::pin(d.dispatch(request(A, Some(b), names::PROV_SESSION, &proof), "closing"));
        assert!(poll_once(&mut proving).is_pending());
        d.close_session(b);
        assert_eq!(*ledger.records.lock().unwrap(), [1, 5]);
        assert_eq!(*ledger.lockouts.lock().unwrap(), [Lockout { failures: 5, wait: Duration::from_secs(1) }]);
        drop(release);
        assert!(proving.await.result.is_err());
        assert_eq!(*ledger.records.lock().unwrap(), [1, 5], "counted once");
    });
}

/// Issue #12: a proof whose session is evicted mid-check to make room for a newcomer counts as failed, and the
/// ledger is told while the newcomer's request goes on.
#[test]
fn r12_a_proof_evicted_mid_check_counts_as_failed_and_is_recorded() {
    with_one_blocking_thread(|| async {
        let (d, ledger) = sec2_dispatcher(1);
        let (a, proof) = up_to_proof(&d, PASSWORD, 10).await;
        let release = hold_blocking_thread();
        let mut proving = Box::pin(d.dispatch(request(A, Some(a), names::PROV_SESSION, &proof), "closing"));
        assert!(poll_once(&mut proving).is_pending());
        // One handshake place, and A's session has no connection: a newcomer's first message takes it.
        let mut rng = SeededRandom::new(12);
        let mut client = ClientSession::new(ClientSecurity::sec2(USER, Password::from(PASSWORD), Sec2Patch::Counter));
        let cmd0 = client.start(&mut rng).unwrap();
        let mut newcomer = Box::pin(d.dispatch(request(B, None, names::PROV_SESSION, &cmd0), "closing"));
        assert!(poll_once(&mut newcomer).is_pending());
        assert!(!d.with_protocomm(|p| p.has_session(a)), "evicted");
        assert_eq!(*ledger.records.lock().unwrap(), [1], "even a right proof, once lost");
        drop(release);
        assert!(newcomer.await.result.is_ok());
        let _ = proving.await;
        assert_eq!((in_flight(&d), d.with_protocomm(|p| p.failed_proofs())), (0, 1));
        assert_eq!(*ledger.records.lock().unwrap(), [1], "counted once");
    });
}
