#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::Plaintext;
use wifiprov_proto::endpoint::{EndpointHandler, HandlerFuture, SessionLimits, names};
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSecurity};
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
