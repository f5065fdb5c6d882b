//! Which session a request belongs to: cookies, connections, several clients at once.

use wifiprov_proto::endpoint::{SessionLimits, names};
use wifiprov_transport_http::TransportError;

use crate::common::*;

fn cookie_id(cookie: &str) -> u32 {
    cookie.strip_prefix("session=").expect("cookie is session=<id>").parse().expect("decimal u32")
}

/// The first handshake message of a security 1 client, as a body.
fn sec1_cmd0(seed: u64) -> Vec<u8> {
    wifiprov_proto::security::ClientSession::new(sec1_client())
        .start(&mut wifiprov_testkit::SeededRandom::new(seed))
        .unwrap()
}

#[tokio::test]
async fn set_cookie_only_on_the_first_response_of_a_session() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, b"none", "")).await;
    let version = raw.response().await;
    assert_eq!(version.header("Set-Cookie"), None, "proto-ver opens no session");
    assert_eq!(server.session_count(), 0);

    raw.send(&post(names::PROV_SESSION, &sec1_cmd0(1), "")).await;
    let first = raw.response().await;
    let cookie = first.header("Set-Cookie").expect("the handshake's first answer sets the cookie").to_owned();
    let id = cookie_id(&cookie);
    // The exact layout of ESP's httpd.
    let expected = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nSet-Cookie: session={id}\r\n\r\n",
        first.body.len()
    );
    assert_eq!(first.head, expected);

    // With the cookie: same session, no new cookie.
    raw.send(&post(names::PROTO_VER, b"no_pop", &format!("Cookie: {cookie}\r\n"))).await;
    let second = raw.response().await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("Set-Cookie"), None);
    // Without a cookie on the same connection: still the same session (ESP's socket rule), so a handshake
    // message restarts the handshake in it rather than opening another.
    raw.send(&post(names::PROV_SESSION, &sec1_cmd0(2), "")).await;
    let third = raw.response().await;
    assert_eq!(third.status, 200);
    assert_eq!(third.header("Set-Cookie"), None);
    assert_eq!(server.session_count(), 1);
}

#[tokio::test]
async fn session_continues_on_a_new_connection_with_the_cookie() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut session = handshake(&mut client, sec1_client(), 20).await;
    assert_echo(&mut client, &mut session, b"before").await;
    let cookie = client.cookie().unwrap().to_owned();

    within(client.reconnect()).await.unwrap();
    assert_echo(&mut client, &mut session, b"after reconnect").await;
    assert_eq!(client.cookie(), Some(cookie.as_str()), "no new session was opened");

    // A different client object (think: the CLI run again) continues the same session with the cookie alone.
    drop(client);
    let mut other = server.client().await;
    other.set_cookie(Some(&cookie)).unwrap();
    assert_echo(&mut other, &mut session, b"from another client").await;
    assert_eq!(other.cookie(), Some(cookie.as_str()));
    assert_eq!(server.session_count(), 1);
}

#[tokio::test]
async fn a_cookie_that_does_not_match_exactly_opens_a_new_session() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut session = handshake(&mut client, sec1_client(), 21).await;
    let original = client.cookie().unwrap().to_owned();
    let id = cookie_id(&original);

    let mut seen = vec![original.clone()];
    for bogus in [
        format!("session={}", id.wrapping_add(1)),
        format!("session={id}; x=2"),
        format!("session=0{id}"),
        format!("Session={id}"),
        format!("other=1; session={id}"),
    ] {
        let mut other = server.client().await;
        other.set_cookie(Some(&bogus)).unwrap();
        within(other.request(names::PROV_SESSION, &sec1_cmd0(3))).await.unwrap();
        let fresh = other.cookie().unwrap().to_owned();
        assert_ne!(fresh, bogus, "{bogus:?} was taken for a session: no new cookie was set");
        cookie_id(&fresh);
        assert!(!seen.contains(&fresh), "{bogus:?} did not get a session of its own");
        seen.push(fresh);
    }
    // The first client's session was not disturbed by any of them.
    assert_echo(&mut client, &mut session, b"still mine").await;
    assert_eq!(client.cookie(), Some(original.as_str()));
}

#[tokio::test]
async fn a_cookieless_client_gets_its_own_session_and_leaves_others_alone() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut first = server.client().await;
    let mut first_session = handshake(&mut first, sec1_client(), 22).await;

    // On ESP this request would silently end the first client's session.
    let mut second = server.client().await;
    within(second.request(names::PROV_SESSION, &sec1_cmd0(4))).await.unwrap();
    assert_ne!(second.cookie(), first.cookie());
    assert_echo(&mut first, &mut first_session, b"first, after second connected").await;

    let mut second_session = handshake(&mut second, sec1_client(), 23).await;
    assert_echo(&mut first, &mut first_session, b"first").await;
    assert_echo(&mut second, &mut second_session, b"second").await;
    assert_eq!(server.session_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_are_isolated() {
    let server = Server::start(protocomm(sec2(), SessionLimits::default())).await;
    let mut tasks = Vec::new();
    for n in 0..4u8 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut client = within(wifiprov_transport_http::HttpClient::connect(addr)).await.unwrap();
            let mut session = handshake(&mut client, sec2_client(), 100 + u64::from(n)).await;
            for i in 0..10u8 {
                assert_echo(&mut client, &mut session, &[n, i, n, i]).await;
            }
            client.cookie().unwrap().to_owned()
        }));
    }
    let mut cookies = Vec::new();
    for task in tasks {
        cookies.push(within(task).await.unwrap());
    }
    cookies.sort();
    cookies.dedup();
    assert_eq!(cookies.len(), 4, "every client had its own session");
}

#[tokio::test]
async fn a_blocking_handler_does_not_hold_up_other_sessions() {
    let mut pc = protocomm(sec1(), SessionLimits::default());
    let mut gate = Gate::install(&mut pc);
    let server = Server::start(pc).await;

    let mut slow = server.client().await;
    let mut slow_session = handshake(&mut slow, sec1_client(), 24).await;
    let cookie = slow.cookie().unwrap().to_owned();
    let blocked = tokio::spawn(async move {
        let reply = call(&mut slow, &mut slow_session, BLOCK, b"scan").await;
        (reply, slow, slow_session)
    });
    assert_eq!(gate.entered().await, b"scan");

    // Another client does a whole handshake and requests while the handler is stuck.
    let mut fast = server.client().await;
    let mut fast_session = handshake(&mut fast, sec1_client(), 25).await;
    assert_echo(&mut fast, &mut fast_session, b"not blocked").await;

    // The blocked session itself is busy: a second request in it (from another connection) is refused.
    let mut intruder = server.client().await;
    intruder.set_cookie(Some(&cookie)).unwrap();
    let err = within(intruder.request(ECHO, b"xxxx")).await.unwrap_err();
    assert!(matches!(err, TransportError::ConnectionClosed { .. }), "{err:?}");

    gate.release();
    let (reply, mut slow, mut slow_session) = within(blocked).await.unwrap();
    assert_eq!(reply.unwrap(), b"released");
    assert_echo(&mut slow, &mut slow_session, b"after the scan").await;
}

#[tokio::test]
async fn a_full_session_table_refuses_newcomers_without_disturbing_established_sessions() {
    let limits = SessionLimits { max_sessions: 1, max_handshakes: 1, ..SessionLimits::default() };
    let server = Server::start(protocomm(sec1(), limits)).await;
    let mut first = server.client().await;
    let mut session = handshake(&mut first, sec1_client(), 26).await;

    // A second client may run its handshake, but when it completes there is no room: the established session
    // of a client that is still connected is never given up for it.
    let mut second = server.client().await;
    let mut rng = wifiprov_testkit::SeededRandom::new(27);
    let mut late = wifiprov_proto::security::ClientSession::new(sec1_client());
    let cmd0 = late.start(&mut rng).unwrap();
    let reply = within(second.request(names::PROV_SESSION, &cmd0)).await.unwrap();
    let cmd1 = late.handle_response(&reply, &mut rng).unwrap().unwrap();
    let refused = within(second.request(names::PROV_SESSION, &cmd1)).await;
    assert!(matches!(refused, Err(TransportError::ConnectionClosed { .. })), "{refused:?}");
    assert_echo(&mut first, &mut session, b"still here").await;
    assert_eq!(server.session_count(), 1);
}

#[tokio::test]
async fn a_session_whose_first_request_fails_is_closed() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut raw = server.raw().await;
    raw.send(&post(names::PROV_SESSION, b"\xff\xff\xff", "")).await;
    raw.assert_closed_silently().await;
    assert_eq!(server.session_count(), 0, "the unreachable session was not kept");
    server.assert_serving().await;
}

#[tokio::test]
async fn abandoned_handshakes_and_version_probes_never_push_out_an_established_session() {
    let limits = SessionLimits { max_sessions: 1, max_handshakes: 2, ..SessionLimits::default() };
    let server = Server::start(protocomm(sec1(), limits)).await;
    let mut established = server.client().await;
    let mut session = handshake(&mut established, sec1_client(), 27).await;
    for seed in 0..5 {
        let mut probe = server.client().await;
        within(probe.request(names::PROTO_VER, b"---")).await.unwrap();
        within(probe.request(names::PROV_SESSION, &sec1_cmd0(seed))).await.unwrap();
    }
    assert_eq!(server.session_count(), 3, "one established, two handshake places");
    assert_echo(&mut established, &mut session, b"survived the probes").await;
}

#[tokio::test]
async fn clients_that_left_make_room_for_new_ones() {
    // Every run of a CLI is a new client with a new session; runs in a row must not fill the table.
    let limits = SessionLimits { max_sessions: 4, max_handshakes: 4, ..SessionLimits::default() };
    let server = Server::start(protocomm(sec1(), limits)).await;
    for seed in 0..20 {
        let mut client = server.client().await;
        let mut session = handshake(&mut client, sec1_client(), 100 + seed).await;
        assert_echo(&mut client, &mut session, b"one run").await;
    }
    // Established clients that are still connected are never evicted: a fifth cannot complete its handshake.
    let mut live = Vec::new();
    for seed in 0..4 {
        let mut client = server.client().await;
        let session = handshake(&mut client, sec1_client(), 200 + seed).await;
        live.push((client, session));
    }
    let mut extra = server.client().await;
    let mut rng = wifiprov_testkit::SeededRandom::new(5);
    let mut refused = wifiprov_proto::security::ClientSession::new(sec1_client());
    let cmd0 = refused.start(&mut rng).unwrap();
    let reply = within(extra.request(names::PROV_SESSION, &cmd0)).await.unwrap();
    let cmd1 = refused.handle_response(&reply, &mut rng).unwrap().unwrap();
    assert!(matches!(extra.request(names::PROV_SESSION, &cmd1).await, Err(TransportError::ConnectionClosed { .. })));
    for (client, session) in &mut live {
        assert_echo(client, session, b"still served").await;
    }
    // One leaves; the next newcomer gets its place.
    drop(live.pop());
    within(async {
        loop {
            // The server notices the closed connection asynchronously.
            let mut next = server.client().await;
            let mut rng = wifiprov_testkit::SeededRandom::new(6);
            let mut client = wifiprov_proto::security::ClientSession::new(sec1_client());
            let mut body = client.start(&mut rng).unwrap();
            let done = loop {
                match next.request(names::PROV_SESSION, &body).await {
                    Ok(reply) => match client.handle_response(&reply, &mut rng).unwrap() {
                        Some(more) => body = more,
                        None => break true,
                    },
                    Err(_) => break false,
                }
            };
            if done {
                let mut session = client;
                assert_echo(&mut next, &mut session, b"made room").await;
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}
