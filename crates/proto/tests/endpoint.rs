//! The protocomm endpoint layer: dispatch, encryption around handlers, and the bounded session table.

use std::time::{Duration, Instant};

use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{HandlerError, Protocomm, ProtocommError, Refusal, SessionId, SessionLimits, names};
use wifiprov_proto::security::{ClientSession, DeviceSecurity, Sec2Patch, SecurityError};
use wifiprov_testkit::SeededRandom;

use crate::common::{PASSWORD, sec1_client, sec1_device, sec2_client, sec2_device};

fn echo(_: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
    Ok([b"echo:", request].concat())
}

fn device(security: DeviceSecurity, max_sessions: usize) -> Protocomm {
    let mut pc = Protocomm::new(SessionLimits { max_sessions, idle_timeout: Duration::from_secs(60) });
    pc.set_version(names::PROTO_VER, "v-test").unwrap();
    pc.set_security(names::PROV_SESSION, security).unwrap();
    pc.add_endpoint(names::PROV_CONFIG, std::sync::Arc::new(echo)).unwrap();
    pc
}

/// Runs the handshake of `client` through `pc` on `session`.
fn connect(
    pc: &mut Protocomm,
    session: SessionId,
    mut client: ClientSession,
    now: Instant,
    rng: &mut SeededRandom,
) -> ClientSession {
    let mut request = client.start(rng).unwrap();
    loop {
        let response = pc.handle(now, session, names::PROV_SESSION, &request, rng).unwrap();
        match client.handle_response(&response, rng).unwrap() {
            Some(next) => request = next,
            None => return client,
        }
    }
}

fn call(
    pc: &mut Protocomm,
    session: SessionId,
    client: &mut ClientSession,
    body: &[u8],
    now: Instant,
    rng: &mut SeededRandom,
) -> Result<Vec<u8>, ProtocommError> {
    let mut request = body.to_vec();
    client.encrypt(&mut request).unwrap();
    let mut response = pc.handle(now, session, names::PROV_CONFIG, &request, rng)?;
    client.decrypt(&mut response).unwrap();
    Ok(response)
}

#[test]
fn handlers_see_plaintext_and_answers_are_encrypted() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(1);
    let mut pc = device(sec2_device(Sec2Patch::Counter), 4);
    let s = SessionId(1);
    let _ = pc.open_session(s, now).unwrap();
    let mut client = connect(&mut pc, s, ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter)), now, &mut rng);
    assert_eq!(call(&mut pc, s, &mut client, b"hello", now, &mut rng).unwrap(), b"echo:hello");
    assert_eq!(call(&mut pc, s, &mut client, b"again", now, &mut rng).unwrap(), b"echo:again");
}

#[test]
fn version_needs_no_session_and_is_never_encrypted() {
    let mut pc = device(sec1_device("pop"), 1);
    let reply = pc.handle(Instant::now(), SessionId(99), names::PROTO_VER, b"---", &mut SeededRandom::new(0)).unwrap();
    assert_eq!(reply, b"v-test");
}

#[test]
fn unknown_endpoint_unknown_session_and_unestablished_session_are_refused() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(2);
    let mut pc = device(sec1_device("pop"), 2);
    assert!(matches!(pc.handle(now, SessionId(1), "nope", b"x", &mut rng), Err(ProtocommError::UnknownEndpoint(_))));
    assert!(matches!(
        pc.handle(now, SessionId(1), names::PROV_CONFIG, b"x", &mut rng),
        Err(ProtocommError::UnknownSession(_))
    ));
    assert!(matches!(
        pc.handle(now, SessionId(1), names::PROV_SESSION, b"x", &mut rng),
        Err(ProtocommError::UnknownSession(_))
    ));
    let _ = pc.open_session(SessionId(1), now).unwrap();
    let err = pc.handle(now, SessionId(1), names::PROV_CONFIG, b"x", &mut rng).unwrap_err();
    assert!(matches!(err, ProtocommError::Security { source: SecurityError::NotEstablished, .. }), "{err:?}");
}

#[test]
fn sec0_serves_ordinary_endpoints_without_a_handshake() {
    let mut pc = device(danger::sec0(), 1);
    let reply =
        pc.handle(Instant::now(), SessionId(5), names::PROV_CONFIG, b"plain", &mut SeededRandom::new(0)).unwrap();
    assert_eq!(reply, b"echo:plain");
}

#[test]
fn sessions_are_isolated() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(3);
    let mut pc = device(sec1_device("pop"), 4);
    let (a, b) = (SessionId(10), SessionId(20));
    let _ = pc.open_session(a, now).unwrap();
    let _ = pc.open_session(b, now).unwrap();
    let mut ca = connect(&mut pc, a, ClientSession::new(sec1_client("pop")), now, &mut rng);
    let mut cb = connect(&mut pc, b, ClientSession::new(sec1_client("pop")), now, &mut rng);
    for i in 0..5 {
        let body = format!("a{i}");
        assert_eq!(
            call(&mut pc, a, &mut ca, body.as_bytes(), now, &mut rng).unwrap(),
            format!("echo:{body}").as_bytes()
        );
        let body = format!("b{i}");
        assert_eq!(
            call(&mut pc, b, &mut cb, body.as_bytes(), now, &mut rng).unwrap(),
            format!("echo:{body}").as_bytes()
        );
    }
}

#[test]
fn full_table_evicts_unauthenticated_first_and_never_an_active_established_session() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(4);
    let mut pc = device(sec1_device("pop"), 2);
    let (est, half, newcomer, another) = (SessionId(1), SessionId(2), SessionId(3), SessionId(4));
    let _ = pc.open_session(est, t0).unwrap();
    pc.attach(est);
    let mut client = connect(&mut pc, est, ClientSession::new(sec1_client("pop")), t0, &mut rng);
    let _ = pc.open_session(half, t0 + Duration::from_secs(1)).unwrap();
    pc.attach(half);

    // The half-open session goes even though it was used more recently than the established one.
    let opened = pc.open_session(newcomer, t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(opened.evicted, Some(half));
    assert!(pc.has_session(est) && pc.has_session(newcomer) && !pc.has_session(half));

    // Now the newcomer is the only unauthenticated one.
    let opened = pc.open_session(another, t0 + Duration::from_secs(3)).unwrap();
    assert_eq!(opened.evicted, Some(newcomer));

    // With only established sessions whose clients are still connected, a newcomer is refused rather than
    // destroying one.
    pc.attach(another);
    let _ = connect(&mut pc, another, ClientSession::new(sec1_client("pop")), t0 + Duration::from_secs(4), &mut rng);
    let err = pc.open_session(SessionId(5), t0 + Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, ProtocommError::TooManySessions(2)));
    assert_eq!(
        call(&mut pc, est, &mut client, b"still here", t0 + Duration::from_secs(6), &mut rng).unwrap(),
        b"echo:still here"
    );

    // Once the established sessions have been idle past the timeout, the least recently used one makes room.
    let later = t0 + Duration::from_secs(200);
    let opened = pc.open_session(SessionId(6), later).unwrap();
    assert_eq!(opened.evicted, Some(another));
}

#[test]
fn custom_endpoints_are_created_before_and_registered_after() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(5);
    let mut pc = device(sec1_device("pop"), 1);
    pc.create_endpoint("custom-data").unwrap();
    assert!(matches!(pc.create_endpoint("custom-data"), Err(ProtocommError::DuplicateEndpoint(_))));
    let _ = pc.open_session(SessionId(1), now).unwrap();
    let mut client = connect(&mut pc, SessionId(1), ClientSession::new(sec1_client("pop")), now, &mut rng);
    // Refused before decryption, as on ESP, so the device's keystream does not move: send bytes our client
    // did not encrypt, or its stream would run ahead of the device's.
    assert!(matches!(
        pc.handle(now, SessionId(1), "custom-data", b"hi", &mut rng),
        Err(ProtocommError::NotRegistered(_))
    ));

    pc.register_handler("custom-data", std::sync::Arc::new(|_: SessionId, _: &[u8]| Ok(b"SUCCESS\0".to_vec())))
        .unwrap();
    let mut body = b"hi".to_vec();
    client.encrypt(&mut body).unwrap();
    let mut reply = pc.handle(now, SessionId(1), "custom-data", &body, &mut rng).unwrap();
    client.decrypt(&mut reply).unwrap();
    assert_eq!(reply, b"SUCCESS\0");
    assert_eq!(
        pc.endpoint_names().collect::<Vec<_>>(),
        [names::PROTO_VER, names::PROV_SESSION, names::PROV_CONFIG, "custom-data"]
    );
    assert!(pc.remove_endpoint("custom-data"));
    assert!(matches!(
        pc.handle(now, SessionId(1), "custom-data", b"x", &mut rng),
        Err(ProtocommError::UnknownEndpoint(_))
    ));
}

#[test]
fn a_failing_handler_gets_no_answer_and_the_session_survives() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(6);
    let mut pc = device(sec2_device(Sec2Patch::Counter), 1);
    pc.add_endpoint("fails", std::sync::Arc::new(|_: SessionId, _: &[u8]| Err(HandlerError::Rejected("no".into()))))
        .unwrap();
    let s = SessionId(1);
    let _ = pc.open_session(s, now).unwrap();
    let mut client = connect(&mut pc, s, ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter)), now, &mut rng);
    let mut body = b"x".to_vec();
    client.encrypt(&mut body).unwrap();
    assert!(matches!(pc.handle(now, s, "fails", &body, &mut rng), Err(ProtocommError::Handler { .. })));
    // Both sides consumed the request's nonce and neither the (unsent) response's, so they stay in step.
    assert!(pc.is_established(s));
    assert_eq!(call(&mut pc, s, &mut client, b"next", now, &mut rng).unwrap(), b"echo:next");
}

#[test]
fn established_sessions_whose_clients_left_make_room() {
    let t0 = Instant::now();
    let mut rng = SeededRandom::new(7);
    let mut pc = device(sec1_device("pop"), 2);
    let (a, b, c) = (SessionId(1), SessionId(2), SessionId(3));
    for (i, id) in [a, b].into_iter().enumerate() {
        let _ = pc.open_session(id, t0 + Duration::from_secs(i as u64)).unwrap();
        pc.attach(id);
        let _ =
            connect(&mut pc, id, ClientSession::new(sec1_client("pop")), t0 + Duration::from_secs(i as u64), &mut rng);
    }
    assert!(matches!(pc.open_session(c, t0 + Duration::from_secs(5)), Err(ProtocommError::TooManySessions(2))));
    // b's client disconnects (its last connection detaches): b makes room, although a is older.
    pc.detach(b);
    assert_eq!(pc.open_session(c, t0 + Duration::from_secs(6)).unwrap().evicted, Some(b));
    assert!(pc.has_session(a) && pc.has_session(c));
    // Reopening an id keeps its connection count: a is still attached and still protected.
    let _ = pc.open_session(a, t0 + Duration::from_secs(7)).unwrap();
    pc.attach(c);
    let _ = connect(&mut pc, c, ClientSession::new(sec1_client("pop")), t0 + Duration::from_secs(7), &mut rng);
    let _ = connect(&mut pc, a, ClientSession::new(sec1_client("pop")), t0 + Duration::from_secs(7), &mut rng);
    assert!(matches!(
        pc.open_session(SessionId(4), t0 + Duration::from_secs(8)),
        Err(ProtocommError::TooManySessions(2))
    ));
}

#[test]
fn a_panicking_handler_fails_its_request_and_the_session_survives() {
    let now = Instant::now();
    let mut rng = SeededRandom::new(7);
    let mut pc = device(danger::sec0(), 2);
    let panics = |_: SessionId, _: &[u8]| -> Result<Vec<u8>, HandlerError> { panic!("handler bug") };
    pc.add_endpoint("custom-panics", std::sync::Arc::new(panics)).unwrap();
    let session = SessionId(3);
    let _ = pc.open_session(session, now).unwrap();
    let err = pc.handle(now, session, "custom-panics", b"x", &mut rng).unwrap_err();
    assert!(
        matches!(err, ProtocommError::Handler { source: HandlerError::Internal(_), .. }),
        "a panic is the device's own failure: {err:?}"
    );
    assert!(!err.is_peer_fault());
    // The session was checked back in: the next request of the same session is served.
    assert_eq!(pc.handle(now, session, names::PROV_CONFIG, b"y", &mut rng).unwrap(), b"echo:y");
}

#[test]
fn fresh_session_ids_avoid_open_ones_and_give_up_on_a_stuck_source() {
    let now = Instant::now();
    let mut pc = device(danger::sec0(), 4);
    let first = pc.unused_session_id(&mut SeededRandom::new(9)).unwrap();
    let _ = pc.open_session(first, now).unwrap();
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
    let _ = pc.open_session(SessionId(0), now).unwrap();
    assert!(pc.unused_session_id(&mut Stuck).is_err(), "a source that only repeats an id in use gives up");
}

#[test]
fn faults_are_blamed_on_the_peer_or_the_device() {
    let peer = [
        ProtocommError::UnknownEndpoint("x".into()),
        ProtocommError::UnknownSession(SessionId(1)),
        ProtocommError::TooManySessions(8),
        ProtocommError::Handler { endpoint: "x".into(), source: HandlerError::Rejected("no".into()) },
    ];
    assert!(peer.iter().all(ProtocommError::is_peer_fault));
    let device = [
        ProtocommError::NoSecurity,
        ProtocommError::NotRegistered("x".into()),
        ProtocommError::Handler { endpoint: "x".into(), source: HandlerError::Internal("disk".into()) },
    ];
    assert!(!device.iter().any(ProtocommError::is_peer_fault));
    assert!(Refusal::Open(ProtocommError::TooManySessions(8)).is_peer_fault());
    assert!(!Refusal::Protocomm(ProtocommError::NoSecurity).is_peer_fault());
    assert!(!Refusal::Random(wifiprov_proto::rng::RandomUnavailable).is_peer_fault(), "the device's random source");
}
