//! The protocomm endpoint layer: dispatch, encryption around handlers, and the bounded session table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{
    EndpointHandler, HandlerError, HandlerFuture, HandshakeStep, Lockout, Peer, Plaintext, ProofOutcome, Protocomm,
    ProtocommError, SessionId, SessionLimits, Step, names,
};
use wifiprov_proto::security::{ClientSession, DeviceSecurity, Sec2Patch, SecurityError};
use wifiprov_testkit::{SeededRandom, block_on};

use crate::common::{PASSWORD, sec1_client, sec1_device, sec2_client, sec2_device};

const ALICE: Peer = Peer::new(1);
const MALLORY: Peer = Peer::new(2);

fn echo(_: Option<SessionId>, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
    Ok([b"echo:", request].concat())
}

fn limits(max_sessions: usize) -> SessionLimits {
    SessionLimits {
        max_sessions,
        max_handshakes: max_sessions,
        idle_timeout: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(10),
    }
}

fn device(security: DeviceSecurity, max_sessions: usize) -> Protocomm {
    let mut pc = Protocomm::new(limits(max_sessions));
    pc.set_version(names::PROTO_VER, "v-test").unwrap();
    let _ = pc.set_security(names::PROV_SESSION, security).unwrap();
    pc.add_endpoint(names::PROV_CONFIG, Arc::new(echo)).unwrap();
    pc
}

fn request(
    pc: &mut Protocomm,
    now: Instant,
    peer: Peer,
    claim: Option<SessionId>,
    endpoint: &str,
    body: &[u8],
    rng: &mut SeededRandom,
) -> Result<(Option<SessionId>, Vec<u8>), ProtocommError> {
    block_on(pc.handle(now, peer, claim, endpoint, body, rng))
}

/// Runs the handshake of `client` from `peer`, opening a session unless `claim` names one; returns the session
/// and the established client.
fn connect(
    pc: &mut Protocomm,
    peer: Peer,
    claim: Option<SessionId>,
    mut client: ClientSession,
    now: Instant,
    rng: &mut SeededRandom,
) -> (SessionId, ClientSession) {
    let mut body = client.start(rng).unwrap();
    let mut session = claim;
    loop {
        let (id, response) = request(pc, now, peer, session, names::PROV_SESSION, &body, rng).unwrap();
        session = id;
        match client.handle_response(&response, rng).unwrap() {
            Some(next) => body = next,
            None => return (session.unwrap(), client),
        }
    }
}

/// Sends only the first handshake message (a session left half-open); returns its session.
fn half_open(
    pc: &mut Protocomm,
    peer: Peer,
    now: Instant,
    rng: &mut SeededRandom,
) -> Result<SessionId, ProtocommError> {
    let body = ClientSession::new(sec1_client("pop")).start(rng).unwrap();
    request(pc, now, peer, None, names::PROV_SESSION, &body, rng).map(|(id, _)| id.unwrap())
}

fn call(
    pc: &mut Protocomm,
    session: SessionId,
    client: &mut ClientSession,
    body: &[u8],
    now: Instant,
    rng: &mut SeededRandom,
) -> Result<Vec<u8>, ProtocommError> {
    let mut body = body.to_vec();
    client.encrypt(&mut body).unwrap();
    let (_, mut response) = request(pc, now, ALICE, Some(session), names::PROV_CONFIG, &body, rng)?;
    client.decrypt(&mut response).unwrap();
    Ok(response)
}

#[test]
fn handlers_see_plaintext_and_answers_are_encrypted() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(1);
    let mut pc = device(sec2_device(Sec2Patch::Counter), 4);
    let client = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    let (s, mut client) = connect(&mut pc, ALICE, None, client, now, &mut rng);
    assert!(pc.is_established(s));
    assert_eq!(call(&mut pc, s, &mut client, b"hello", now, &mut rng).unwrap(), b"echo:hello");
    assert_eq!(call(&mut pc, s, &mut client, b"again", now, &mut rng).unwrap(), b"echo:again");
}

#[test]
fn only_the_security_endpoint_opens_sessions() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(2);
    let mut pc = device(sec1_device("pop"), 1);
    // proto-ver answers anyone and opens nothing, however often it is asked.
    for _ in 0..10 {
        let (session, reply) = request(&mut pc, now, MALLORY, None, names::PROTO_VER, b"---", &mut rng).unwrap();
        assert_eq!((session, reply.as_slice()), (None, &b"v-test"[..]));
    }
    assert_eq!(pc.session_count(), 0);
    // Neither do encrypted endpoints without a session, nor with a claim on a session that is not open.
    let err = request(&mut pc, now, MALLORY, None, names::PROV_CONFIG, b"x", &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::NoSession), "{err:?}");
    let err = request(&mut pc, now, MALLORY, Some(SessionId(9)), names::PROV_CONFIG, b"x", &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::UnknownSession(SessionId(9))), "{err:?}");
    assert_eq!(pc.session_count(), 0);

    // The first handshake message opens one, under a fresh id, even when it claims a stale session.
    let first = ClientSession::new(sec1_client("pop")).start(&mut rng).unwrap();
    let begun = pc.begin(now, ALICE, Some(SessionId(9)), names::PROV_SESSION, first, &mut rng).unwrap();
    let id = begun.session.unwrap();
    assert!(begun.opened.is_some_and(|o| o.closed.is_empty()), "a new session, nothing closed");
    assert_ne!(id, SessionId(9));
    let Step::Handshake(step) = begun.step else { panic!("a handshake step") };
    let (checkout, reply) = step.run(&mut rng);
    let _ = pc.check_in(checkout);
    reply.unwrap();
    // proto-ver with that session runs in it, and opens nothing either.
    let (session, _) = request(&mut pc, now, ALICE, Some(id), names::PROTO_VER, b"---", &mut rng).unwrap();
    assert_eq!(session, Some(id));
    assert_eq!(pc.session_count(), 1);
}

#[test]
fn unknown_endpoint_and_unestablished_session_are_refused() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(2);
    let mut pc = device(sec1_device("pop"), 2);
    let err = request(&mut pc, now, ALICE, None, "nope", b"x", &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::UnknownEndpoint(_)));
    let s = half_open(&mut pc, ALICE, now, &mut rng).unwrap();
    let err = request(&mut pc, now, ALICE, Some(s), names::PROV_CONFIG, b"x", &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::Security { source: SecurityError::NotEstablished, .. }), "{err:?}");
}

#[test]
fn sec0_serves_ordinary_endpoints_without_a_session() {
    let mut pc = device(danger::sec0(), 1);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = {
        let seen = seen.clone();
        move |session: Option<SessionId>, _: &[u8]| -> Result<Vec<u8>, HandlerError> {
            seen.lock().unwrap().push(session);
            Ok(b"ok".to_vec())
        }
    };
    pc.add_endpoint("custom-record", Arc::new(record)).unwrap();
    let mut rng = SeededRandom::new(0);
    let (session, reply) =
        request(&mut pc, Instant::now(), ALICE, None, names::PROV_CONFIG, b"plain", &mut rng).unwrap();
    assert_eq!((session, reply.as_slice()), (None, &b"echo:plain"[..]));
    request(&mut pc, Instant::now(), ALICE, Some(SessionId(3)), "custom-record", b"x", &mut rng).unwrap();
    assert_eq!(*seen.lock().unwrap(), [None], "the handler sees that no session was involved");
    assert_eq!(pc.session_count(), 0);
}

#[test]
fn sessions_are_isolated() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(3);
    let mut pc = device(sec1_device("pop"), 4);
    let (a, mut ca) = connect(&mut pc, ALICE, None, ClientSession::new(sec1_client("pop")), now, &mut rng);
    let (b, mut cb) = connect(&mut pc, MALLORY, None, ClientSession::new(sec1_client("pop")), now, &mut rng);
    assert_ne!(a, b);
    for i in 0..5 {
        let body = format!("a{i}");
        let reply = call(&mut pc, a, &mut ca, body.as_bytes(), now, &mut rng).unwrap();
        assert_eq!(reply, format!("echo:{body}").as_bytes());
        let body = format!("b{i}");
        let reply = call(&mut pc, b, &mut cb, body.as_bytes(), now, &mut rng).unwrap();
        assert_eq!(reply, format!("echo:{body}").as_bytes());
    }
}

#[test]
fn a_flood_of_handshakes_replaces_only_its_own_sessions() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(4);
    let mut pc = device(sec1_device("pop"), 4);
    // Alice's handshake is under way on a live connection.
    let alice = half_open(&mut pc, ALICE, t0, &mut rng).unwrap();
    pc.attach(alice);
    // Mallory opens far more handshakes than there is room for, each on a live connection.
    let mut mallory = Vec::new();
    for i in 0..20 {
        let now = t0 + Duration::from_millis(i);
        let id = half_open(&mut pc, MALLORY, now, &mut rng).unwrap();
        pc.attach(id);
        mallory.push(id);
    }
    assert_eq!(pc.session_count(), 4);
    assert!(pc.has_session(alice), "a peer's one live handshake is never evicted by another's flood");
    let kept: Vec<SessionId> = mallory.iter().copied().filter(|id| pc.has_session(*id)).collect();
    assert_eq!(kept, mallory[17..], "the flood evicts its own oldest first");
    // Alice finishes her handshake in the same session.
    let (_, mut client) = connect(&mut pc, ALICE, Some(alice), ClientSession::new(sec1_client("pop")), t0, &mut rng);
    assert_eq!(call(&mut pc, alice, &mut client, b"mine", t0, &mut rng).unwrap(), b"echo:mine");
}

#[test]
fn a_newcomer_takes_the_noisiest_peers_abandoned_handshake_first() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(5);
    let mut pc = device(sec1_device("pop"), 3);
    let quiet = half_open(&mut pc, ALICE, t0, &mut rng).unwrap();
    let live = half_open(&mut pc, MALLORY, t0 + Duration::from_secs(1), &mut rng).unwrap();
    pc.attach(live);
    let abandoned = half_open(&mut pc, MALLORY, t0 + Duration::from_secs(2), &mut rng).unwrap();
    // The quiet peer's session is the oldest and abandoned too, but the noisiest peer pays first, and its
    // abandoned handshake before its live one.
    let newcomer = half_open(&mut pc, Peer::new(3), t0 + Duration::from_secs(3), &mut rng).unwrap();
    assert!(!pc.has_session(abandoned));
    assert!(pc.has_session(quiet) && pc.has_session(live) && pc.has_session(newcomer));
}

#[test]
fn established_sessions_make_room_only_for_clients_that_proved_their_credential() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(6);
    let mut pc = device(sec1_device("pop"), 2);
    let client = || ClientSession::new(sec1_client("pop"));
    let (a, mut ca) = connect(&mut pc, ALICE, None, client(), t0, &mut rng);
    pc.attach(a);
    let (b, _) = connect(&mut pc, ALICE, None, client(), t0 + Duration::from_secs(1), &mut rng);
    // b's client left (no connection). Handshakes without a credential never touch established sessions.
    for i in 0..5 {
        half_open(&mut pc, MALLORY, t0 + Duration::from_secs(2 + i), &mut rng).unwrap();
    }
    assert!(pc.has_session(a) && pc.has_session(b));
    // A client that completes its handshake takes the place of the one that left.
    let (c, mut cc) = connect(&mut pc, Peer::new(3), None, client(), t0 + Duration::from_secs(10), &mut rng);
    pc.attach(c);
    assert!(pc.has_session(a) && !pc.has_session(b) && pc.has_session(c));
    // With every established session still connected, the next one is refused when its handshake completes.
    let mut late = client();
    let mut body = late.start(&mut rng).unwrap();
    let mut session = None;
    let refused = loop {
        match request(
            &mut pc,
            t0 + Duration::from_secs(11),
            Peer::new(4),
            session,
            names::PROV_SESSION,
            &body,
            &mut rng,
        ) {
            Ok((id, response)) => {
                session = id;
                match late.handle_response(&response, &mut rng).unwrap() {
                    Some(next) => body = next,
                    None => panic!("the handshake completed although there is no room"),
                }
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, ProtocommError::TooManySessions(_)), "{refused:?}");
    assert!(!pc.has_session(session.unwrap()), "the refused session is closed");
    assert_eq!(
        call(&mut pc, a, &mut ca, b"still here", t0 + Duration::from_secs(12), &mut rng).unwrap(),
        b"echo:still here"
    );
    assert_eq!(call(&mut pc, c, &mut cc, b"me too", t0 + Duration::from_secs(12), &mut rng).unwrap(), b"echo:me too");
    // An established session nobody carries expires after the idle timeout.
    pc.detach(c);
    let opened = pc.open_session(SessionId(99), MALLORY, t0 + Duration::from_secs(100)).unwrap();
    assert_eq!(opened.closed, [c]);
    assert!(pc.has_session(a), "the connected session stays, however long it is idle");
}

#[test]
fn a_stalled_handshake_makes_room_even_on_a_live_connection() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(7);
    let mut pc = device(sec1_device("pop"), 1);
    let stalled = half_open(&mut pc, ALICE, t0, &mut rng).unwrap();
    pc.attach(stalled);
    assert!(matches!(
        half_open(&mut pc, MALLORY, t0 + Duration::from_secs(9), &mut rng),
        Err(ProtocommError::TooManySessions(1))
    ));
    let newcomer = half_open(&mut pc, MALLORY, t0 + Duration::from_secs(10), &mut rng).unwrap();
    assert!(pc.has_session(newcomer) && !pc.has_session(stalled));
}

#[test]
fn a_session_serves_one_request_at_a_time() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(8);
    let mut pc = device(danger::sec0(), 2);
    let (s, _) = connect(
        &mut pc,
        ALICE,
        None,
        ClientSession::new(wifiprov_proto::security::ClientSecurity::sec0()),
        now,
        &mut rng,
    );
    let first = pc.begin(now, ALICE, Some(s), names::PROV_CONFIG, b"one".to_vec(), &mut rng).unwrap();
    let err = pc.begin(now, ALICE, Some(s), names::PROV_CONFIG, b"two".to_vec(), &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::SessionBusy(id) if id == s));
    let Step::Call(call) = first.step else { panic!("a call") };
    let (checkout, reply) = block_on(call.run());
    assert_eq!(reply.unwrap(), b"echo:one");
    let _ = pc.check_in(checkout.unwrap());
    assert!(pc.begin(now, ALICE, Some(s), names::PROV_CONFIG, b"two".to_vec(), &mut rng).is_ok());

    // A session closed while checked out stays closed when its request ends.
    let (t, _) = connect(
        &mut pc,
        MALLORY,
        None,
        ClientSession::new(wifiprov_proto::security::ClientSecurity::sec0()),
        now,
        &mut rng,
    );
    let Step::Call(call) = pc.begin(now, MALLORY, Some(t), names::PROV_CONFIG, b"x".to_vec(), &mut rng).unwrap().step
    else {
        panic!("a call")
    };
    assert_eq!(pc.close_session(t), Some(Default::default()), "closed, and no proof was lost");
    let (checkout, _) = block_on(call.run());
    let _ = pc.check_in(checkout.unwrap());
    assert!(!pc.has_session(t));
}

#[test]
fn custom_endpoints_are_created_before_and_registered_after() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(5);
    let mut pc = device(sec1_device("pop"), 1);
    pc.create_endpoint("custom-data").unwrap();
    assert!(matches!(pc.create_endpoint("custom-data"), Err(ProtocommError::DuplicateEndpoint(_))));
    let (s, mut client) = connect(&mut pc, ALICE, None, ClientSession::new(sec1_client("pop")), now, &mut rng);
    // Refused before decryption, as on ESP, so the device's keystream does not move: send bytes our client
    // did not encrypt, or its stream would run ahead of the device's.
    assert!(matches!(
        request(&mut pc, now, ALICE, Some(s), "custom-data", b"hi", &mut rng),
        Err(ProtocommError::NotRegistered(_))
    ));

    pc.register_handler("custom-data", Arc::new(|_: Option<SessionId>, _: &[u8]| Ok(b"SUCCESS\0".to_vec()))).unwrap();
    let mut body = b"hi".to_vec();
    client.encrypt(&mut body).unwrap();
    let (_, mut reply) = request(&mut pc, now, ALICE, Some(s), "custom-data", &body, &mut rng).unwrap();
    client.decrypt(&mut reply).unwrap();
    assert_eq!(reply, b"SUCCESS\0");
    assert_eq!(
        pc.endpoint_names().collect::<Vec<_>>(),
        [names::PROTO_VER, names::PROV_SESSION, names::PROV_CONFIG, "custom-data"]
    );
    assert!(pc.remove_endpoint("custom-data"));
    assert!(matches!(
        request(&mut pc, now, ALICE, Some(s), "custom-data", b"x", &mut rng),
        Err(ProtocommError::UnknownEndpoint(_))
    ));
}

#[test]
fn a_failing_handler_gets_no_answer_and_the_session_survives() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(6);
    let mut pc = device(sec2_device(Sec2Patch::Counter), 1);
    let fails =
        |_: Option<SessionId>, _: &[u8]| -> Result<Vec<u8>, HandlerError> { Err(HandlerError::Rejected("no".into())) };
    pc.add_endpoint("fails", Arc::new(fails)).unwrap();
    let client = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    let (s, mut client) = connect(&mut pc, ALICE, None, client, now, &mut rng);
    let mut body = b"x".to_vec();
    client.encrypt(&mut body).unwrap();
    let err = request(&mut pc, now, ALICE, Some(s), "fails", &body, &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::Handler { .. }));
    // Both sides consumed the request's nonce and neither the (unsent) response's, so they stay in step.
    assert!(pc.is_established(s));
    assert_eq!(call(&mut pc, s, &mut client, b"next", now, &mut rng).unwrap(), b"echo:next");
}

/// A handler whose future panics on its first poll.
struct PanicsLater;

impl EndpointHandler for PanicsLater {
    fn handle(&self, _: Option<SessionId>, _: Plaintext) -> HandlerFuture {
        Box::pin(async { panic!("handler bug inside its future") })
    }
}

#[test]
fn a_panicking_handler_fails_its_request_and_the_session_survives() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(7);
    let mut pc = device(danger::sec0(), 2);
    let panics = |_: Option<SessionId>, _: &[u8]| -> Result<Vec<u8>, HandlerError> { panic!("handler bug") };
    pc.add_endpoint("custom-panics", Arc::new(panics)).unwrap();
    pc.add_endpoint("custom-panics-later", Arc::new(PanicsLater)).unwrap();
    let (session, _) = connect(
        &mut pc,
        ALICE,
        None,
        ClientSession::new(wifiprov_proto::security::ClientSecurity::sec0()),
        now,
        &mut rng,
    );
    for endpoint in ["custom-panics", "custom-panics-later"] {
        let err = request(&mut pc, now, ALICE, Some(session), endpoint, b"x", &mut rng).unwrap_err();
        assert!(
            matches!(err, ProtocommError::Handler { source: HandlerError::Internal(_), .. }),
            "a panic is the device's own failure: {err:?}"
        );
        assert!(!err.is_peer_fault());
        // The session was checked back in: the next request of the same session is served.
        let (_, reply) = request(&mut pc, now, ALICE, Some(session), names::PROV_CONFIG, b"y", &mut rng).unwrap();
        assert_eq!(reply, b"echo:y");
    }
}

#[test]
fn fresh_session_ids_avoid_open_ones_and_give_up_on_a_stuck_source() {
    let now = Instant::now();
    let mut pc = device(danger::sec0(), 4);
    let first = pc.unused_session_id(&mut SeededRandom::new(9)).unwrap();
    let _ = pc.open_session(first, ALICE, now).unwrap();
    // The same seed draws `first` again first; the id in use is skipped.
    let second = pc.unused_session_id(&mut SeededRandom::new(9)).unwrap();
    assert_ne!(first, second);

    struct Stuck;
    impl wifiprov_proto::rng::SecureRandom for Stuck {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), wifiprov_proto::rng::RandomUnavailable> {
            dest.fill(0);
            Ok(())
        }
    }
    let _ = pc.open_session(SessionId(0), ALICE, now).unwrap();
    assert!(pc.unused_session_id(&mut Stuck).is_err(), "a source that only repeats an id in use gives up");
    let err = pc.begin(now, ALICE, None, names::PROV_SESSION, b"x".to_vec(), &mut Stuck).unwrap_err();
    assert!(matches!(err, ProtocommError::Random(_)) && !err.is_peer_fault(), "{err:?}");
}

#[test]
fn faults_are_blamed_on_the_peer_or_the_device() {
    let peer = [
        ProtocommError::UnknownEndpoint("x".into()),
        ProtocommError::UnknownSession(SessionId(1)),
        ProtocommError::NoSession,
        ProtocommError::SessionBusy(SessionId(1)),
        ProtocommError::TooManySessions(8),
        ProtocommError::Handler { endpoint: "x".into(), source: HandlerError::Rejected("no".into()) },
    ];
    assert!(peer.iter().all(ProtocommError::is_peer_fault));
    let device = [
        ProtocommError::NoSecurity,
        ProtocommError::Random(wifiprov_proto::rng::RandomUnavailable),
        ProtocommError::NotRegistered("x".into()),
        ProtocommError::Handler { endpoint: "x".into(), source: HandlerError::Internal("disk".into()) },
    ];
    assert!(!device.iter().any(ProtocommError::is_peer_fault));
}

#[test]
fn a_floods_handshakes_go_even_while_their_step_runs() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(11);
    let mut pc = device(sec1_device("pop"), 2);
    let alice = half_open(&mut pc, ALICE, t0, &mut rng).unwrap();
    pc.attach(alice);
    let busy = half_open(&mut pc, MALLORY, t0, &mut rng).unwrap();
    pc.attach(busy);
    // Mallory's handshake step is running (its session is checked out) when her next one arrives.
    let body = ClientSession::new(sec1_client("pop")).start(&mut rng).unwrap();
    let Step::Handshake(step) = pc.begin(t0, MALLORY, Some(busy), names::PROV_SESSION, body, &mut rng).unwrap().step
    else {
        panic!("a handshake step")
    };
    let next = half_open(&mut pc, MALLORY, t0, &mut rng).unwrap();
    assert!(pc.has_session(alice) && pc.has_session(next) && !pc.has_session(busy));
    // The step still answers, but its session stays closed.
    let (checkout, reply) = step.run(&mut rng);
    assert!(reply.is_ok());
    let _ = pc.check_in(checkout);
    assert!(!pc.has_session(busy));
}

/// Runs a handshake of `client` to its end and returns the error it ended with, if any.
fn try_connect(
    pc: &mut Protocomm,
    client: &mut ClientSession,
    now: Instant,
    rng: &mut SeededRandom,
) -> Result<SessionId, ProtocommError> {
    let mut body = client.start(rng).unwrap();
    let mut session = None;
    loop {
        let (id, response) = request(pc, now, MALLORY, session, names::PROV_SESSION, &body, rng)?;
        session = id;
        match client.handle_response(&response, rng) {
            Ok(Some(next)) => body = next,
            Ok(None) => return Ok(session.unwrap()),
            Err(e) => panic!("the device answered but the client refused: {e}"),
        }
    }
}

#[test]
fn wrong_proofs_lock_the_device_out_for_doubling_waits_and_a_right_one_forgives_them() {
    for (security, wrong, right) in [
        (sec1_device("abcd1234"), sec1_client("abcd9999"), sec1_client("abcd1234")),
        (
            sec2_device(Sec2Patch::Counter),
            sec2_client("wrong", Sec2Patch::Counter),
            sec2_client(PASSWORD, Sec2Patch::Counter),
        ),
    ] {
        let mut rng = SeededRandom::new(7);
        let mut pc = device(security, 4);
        let t0 = Instant::now();
        for n in 1..=5 {
            let refused = try_connect(&mut pc, &mut ClientSession::new(wrong.clone()), t0, &mut rng).unwrap_err();
            assert!(matches!(refused, ProtocommError::Security { .. }), "guess {n}: {refused:?}");
            assert_eq!(pc.failed_proofs(), n);
        }
        // The fifth failure started a 1 s wait: even the right client must wait for it, and is told how long.
        let locked = try_connect(&mut pc, &mut ClientSession::new(right.clone()), t0, &mut rng).unwrap_err();
        assert!(
            matches!(locked, ProtocommError::LockedOut { retry_after } if retry_after == Duration::from_secs(1)),
            "{locked:?}"
        );
        assert_eq!(locked.to_string(), "locked for 1 s after repeated wrong proofs of possession or passwords");
        let t1 = t0 + Duration::from_secs(1);
        try_connect(&mut pc, &mut ClientSession::new(wrong.clone()), t1, &mut rng).unwrap_err();
        assert_eq!(pc.locked_for(t1), Some(Duration::from_secs(2)), "the sixth failure doubles the wait");
        let t2 = t1 + Duration::from_secs(2);
        try_connect(&mut pc, &mut ClientSession::new(right.clone()), t2, &mut rng).unwrap();
        assert_eq!(pc.failed_proofs(), 0);
        assert_eq!(pc.locked_for(t2), None);
    }
}

/// Starts a security 1 handshake with `pop` in a new session; returns the session and the proof to send in it.
fn up_to_proof(pc: &mut Protocomm, pop: &str, now: Instant, rng: &mut SeededRandom) -> (SessionId, Vec<u8>) {
    let mut client = ClientSession::new(sec1_client(pop));
    let cmd0 = client.start(rng).unwrap();
    let (id, response) = request(pc, now, MALLORY, None, names::PROV_SESSION, &cmd0, rng).unwrap();
    (id.unwrap(), client.handle_response(&response, rng).unwrap().unwrap())
}

/// Begins the proof `proof` in session `id` (not run yet).
fn begin_proof(
    pc: &mut Protocomm,
    id: SessionId,
    proof: &[u8],
    now: Instant,
    rng: &mut SeededRandom,
) -> Result<HandshakeStep, ProtocommError> {
    match pc.begin(now, MALLORY, Some(id), names::PROV_SESSION, proof.to_vec(), rng)?.step {
        Step::Handshake(step) => Ok(step),
        other => panic!("a handshake step, not {other:?}"),
    }
}

/// Issue #12: right proofs in flight together never count, however many, so legitimate clients (or a flood of
/// correct handshakes) never lock each other out, and the count (on disk in the daemon) never changes.
#[test]
fn r12_right_proofs_in_flight_together_are_never_locked_out() {
    let mut rng = SeededRandom::new(8);
    let mut pc = device(sec1_device("abcd1234"), 8);
    let now = Instant::now();
    let proofs: Vec<_> = (0..8).map(|_| up_to_proof(&mut pc, "abcd1234", now, &mut rng)).collect();
    // As many proofs as there are free failures run at once (any could be wrong); the others are asked to retry,
    // as busy, not locked out.
    let mut steps = Vec::new();
    for (i, (id, proof)) in proofs.iter().enumerate() {
        match begin_proof(&mut pc, *id, proof, now, &mut rng) {
            Ok(step) => steps.push(step),
            Err(error) => assert!(i >= 5 && matches!(error, ProtocommError::ProofInFlight { .. }), "{i}: {error:?}"),
        }
    }
    assert_eq!(pc.proofs_in_flight(), 5);
    assert_eq!((pc.failed_proofs(), pc.locked_for(now)), (0, None));
    let check = |pc: &mut Protocomm, step: HandshakeStep, rng: &mut SeededRandom| {
        let (checkout, reply) = step.run(rng);
        reply.unwrap();
        let checked = pc.check_in(checkout);
        assert!(!checked.refused);
        assert_eq!(checked.proof, Some(ProofOutcome::Succeeded { forgiven: 0 }), "nothing to persist");
    };
    for step in steps {
        check(&mut pc, step, &mut rng);
    }
    // The ones asked to retry kept their sessions and succeed now.
    for (id, proof) in &proofs[5..] {
        let step = begin_proof(&mut pc, *id, proof, now, &mut rng).expect("taken up on retry");
        check(&mut pc, step, &mut rng);
    }
    assert_eq!((pc.failed_proofs(), pc.proofs_in_flight(), pc.locked_for(now)), (0, 0, None));
}

/// Issue #12: once the free failures are spent, a guesser gets one proof checked at a time: a second one in
/// flight is refused at once as busy (not a lockout, not counted), and after the first fails it must wait.
#[test]
fn r12_beyond_the_free_failures_a_second_proof_in_flight_is_refused_as_busy() {
    let mut rng = SeededRandom::new(8);
    let mut pc = device(sec1_device("abcd1234"), 8);
    let start = Instant::now();
    let _ = pc.restore_failed_proofs(5, start);
    let now = start + Duration::from_secs(1);
    let (a, wrong) = up_to_proof(&mut pc, "abcd0000", now, &mut rng);
    // Even the right proof waits its turn: nothing tells it apart before it is checked.
    let (b, right) = up_to_proof(&mut pc, "abcd1234", now, &mut rng);
    let first = begin_proof(&mut pc, a, &wrong, now, &mut rng).unwrap();
    let busy = begin_proof(&mut pc, b, &right, now, &mut rng).unwrap_err();
    assert!(
        matches!(busy, ProtocommError::ProofInFlight { retry_after } if retry_after == Duration::from_secs(1)),
        "{busy:?}"
    );
    assert!(busy.is_peer_fault());
    assert_eq!((pc.failed_proofs(), pc.proofs_in_flight(), pc.locked_for(now)), (5, 1, None), "not counted");
    // The first proof fails and starts the sixth failure's wait; the second, left as it was, then waits too.
    let (checkout, reply) = first.run(&mut rng);
    assert!(reply.is_err());
    let lockout = Some(Lockout { failures: 6, wait: Duration::from_secs(2) });
    assert_eq!(pc.check_in(checkout).proof, Some(ProofOutcome::Failed { failures: 6, lockout }));
    let locked = begin_proof(&mut pc, b, &right, now, &mut rng).unwrap_err();
    assert!(matches!(locked, ProtocommError::LockedOut { .. }), "{locked:?}");
    let later = now + Duration::from_secs(2);
    let (checkout, reply) = begin_proof(&mut pc, b, &right, later, &mut rng).unwrap().run(&mut rng);
    reply.unwrap();
    assert_eq!(pc.check_in(checkout).proof, Some(ProofOutcome::Succeeded { forgiven: 6 }));
}

/// Issue #12: a proof whose session closes before it is checked in (closed, reopened, its task cancelled)
/// counts as failed when the session goes, even if it would have been right: dropping a connection mid-proof
/// does not escape the count, and the caller is told so that it persists the count.
#[test]
fn r12_a_proof_whose_session_closes_before_check_in_counts_as_failed() {
    let mut rng = SeededRandom::new(8);
    let mut pc = device(sec1_device("abcd1234"), 8);
    let now = Instant::now();
    let (a, proof) = up_to_proof(&mut pc, "abcd1234", now, &mut rng);
    let step = begin_proof(&mut pc, a, &proof, now, &mut rng).unwrap();
    let closed = pc.close_session(a).unwrap();
    assert_eq!(closed.lost, Some(ProofOutcome::Failed { failures: 1, lockout: None }));
    let (checkout, reply) = step.run(&mut rng);
    reply.unwrap();
    assert_eq!(pc.check_in(checkout).proof, None, "counted when its session closed, and only then");
    assert_eq!(pc.failed_proofs(), 1);

    // Reopened mid-proof, then the task is cancelled.
    let (b, proof) = up_to_proof(&mut pc, "abcd0000", now, &mut rng);
    let step = begin_proof(&mut pc, b, &proof, now, &mut rng).unwrap();
    let opened = pc.open_session(b, MALLORY, now).unwrap();
    assert_eq!(opened.lost, Some(ProofOutcome::Failed { failures: 2, lockout: None }));
    drop(step);
    assert_eq!((pc.failed_proofs(), pc.proofs_in_flight()), (2, 0));

    // Evicted by a newcomer mid-proof (one handshake place, and the session has no connection).
    let mut pc = device(sec1_device("abcd1234"), 1);
    let (c, proof) = up_to_proof(&mut pc, "abcd1234", now, &mut rng);
    let step = begin_proof(&mut pc, c, &proof, now, &mut rng).unwrap();
    let cmd0 = ClientSession::new(sec1_client("abcd1234")).start(&mut rng).unwrap();
    let begun = pc.begin(now, ALICE, None, names::PROV_SESSION, cmd0, &mut rng).unwrap();
    let opened = begun.opened.unwrap();
    assert_eq!(opened.closed, [c]);
    assert_eq!(opened.lost, Some(ProofOutcome::Failed { failures: 1, lockout: None }));
    let Step::Handshake(cmd0) = begun.step else { panic!("a handshake step") };
    let _ = pc.check_in(cmd0.run(&mut rng).0);
    let _ = pc.check_in(step.run(&mut rng).0);
    assert_eq!(pc.failed_proofs(), 1);
}

/// Issue #12: the wait a failure starts runs from the moment its proof was taken up, so a slow check (or a
/// session closed long after) does not shorten it.
#[test]
fn r12_the_wait_runs_from_when_the_failed_proof_began() {
    let mut rng = SeededRandom::new(8);
    let mut pc = device(sec1_device("abcd1234"), 8);
    let start = Instant::now();
    let _ = pc.restore_failed_proofs(5, start);
    let t0 = start + Duration::from_secs(1);
    let (a, wrong) = up_to_proof(&mut pc, "abcd0000", t0, &mut rng);
    let (checkout, _) = begin_proof(&mut pc, a, &wrong, t0, &mut rng).unwrap().run(&mut rng);
    // Checked in whenever the check ends: the sixth failure's 2 s run from t0.
    let _ = pc.check_in(checkout);
    assert_eq!(pc.locked_for(t0 + Duration::from_millis(1500)), Some(Duration::from_millis(500)));
    assert_eq!(pc.locked_for(t0 + Duration::from_secs(2)), None);
    // A proof lost with its session: the seventh failure's 4 s run from when it began, not from the close.
    let t1 = t0 + Duration::from_secs(2);
    let (b, wrong) = up_to_proof(&mut pc, "abcd0001", t1, &mut rng);
    let step = begin_proof(&mut pc, b, &wrong, t1, &mut rng).unwrap();
    let lockout = Some(Lockout { failures: 7, wait: Duration::from_secs(4) });
    assert_eq!(pc.close_session(b).unwrap().lost, Some(ProofOutcome::Failed { failures: 7, lockout }));
    drop(step);
    assert_eq!(pc.locked_for(t1 + Duration::from_secs(3)), Some(Duration::from_secs(1)));
}

#[test]
fn no_secret_means_no_guessing_limit() {
    let mut rng = SeededRandom::new(9);
    let mut pc = device(danger::sec1_without_pop(), 4);
    let now = Instant::now();
    for _ in 0..20 {
        connect(&mut pc, ALICE, None, ClientSession::new(sec1_client("")), now, &mut rng);
    }
    assert_eq!(pc.failed_proofs(), 0);
}

/// Found by the `protocomm` fuzz target (issue #12): a request still running in a session that was reopened
/// meanwhile was checked back in over the new session while the new session's own request was running. The
/// reopened session got the old one's state back (here: established, before any handshake of its own), and a
/// third request got through although a request of the session was still running.
#[test]
fn r12_a_request_of_a_reopened_session_is_not_checked_in_over_the_new_one() {
    let mut rng = SeededRandom::new(12);
    let now = Instant::now();
    let mut pc = device(danger::sec0(), 2);
    let id = SessionId(7);
    let _ = pc.open_session(id, ALICE, now).unwrap();
    let hello = ClientSession::new(wifiprov_proto::security::ClientSecurity::sec0()).start(&mut rng).unwrap();
    request(&mut pc, now, ALICE, Some(id), names::PROV_SESSION, &hello, &mut rng).unwrap();
    assert!(pc.is_established(id));
    let call = |pc: &mut Protocomm, rng: &mut SeededRandom| match pc
        .begin(now, ALICE, Some(id), names::PROV_CONFIG, b"x".to_vec(), rng)
        .unwrap()
        .step
    {
        Step::Call(call) => call,
        other => panic!("a call, not {other:?}"),
    };
    let old = call(&mut pc, &mut rng);
    let _ = pc.open_session(id, ALICE, now).unwrap();
    let new = call(&mut pc, &mut rng);
    let (old_checkout, reply) = block_on(old.run());
    reply.unwrap();
    let _ = pc.check_in(old_checkout.unwrap());
    assert!(!pc.is_established(id), "the reopened session took the old one's state");
    let err = pc.begin(now, ALICE, Some(id), names::PROV_CONFIG, b"x".to_vec(), &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::SessionBusy(busy) if busy == id), "{err:?}");
    let (new_checkout, reply) = block_on(new.run());
    reply.unwrap();
    let _ = pc.check_in(new_checkout.unwrap());
    assert!(pc.begin(now, ALICE, Some(id), names::PROV_CONFIG, b"x".to_vec(), &mut rng).is_ok());
}
