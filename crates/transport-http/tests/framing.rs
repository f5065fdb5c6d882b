//! HTTP framing as ESP devices do it, checked byte for byte with a raw TCP peer.

use std::time::Duration;

use wifiprov_proto::endpoint::{SessionLimits, names};
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::HttpConfig;

use crate::common::*;

async fn server() -> Server {
    Server::start(protocomm(sec1(), SessionLimits::default())).await
}

#[tokio::test]
async fn protocomm_failures_close_the_connection_without_a_byte() {
    let server = server().await;
    // Garbage on the security endpoint.
    let mut raw = server.raw().await;
    raw.send(&post(names::PROV_SESSION, b"\x08\x99\x99garbage", "")).await;
    raw.assert_closed_silently().await;

    // An encrypted endpoint before any handshake.
    let mut raw = server.raw().await;
    raw.send(&post(ECHO, b"0123456789", "")).await;
    raw.assert_closed_silently().await;

    // A failure in the middle of a kept-alive connection: the earlier response went out, then nothing more.
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, b"---", "")).await;
    assert_eq!(raw.response().await.status, 200);
    raw.send(&post(names::PROV_SESSION, b"\xff", "")).await;
    raw.assert_closed_silently().await;

    server.assert_serving().await;
}

#[tokio::test]
async fn unacceptable_body_lengths_close_without_a_byte() {
    let server = server().await;
    let head = |headers: &str| format!("POST /{} HTTP/1.1\r\nHost: test\r\n{headers}\r\n", names::PROTO_VER);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("content-length 0", head("Content-Length: 0\r\n").into_bytes()),
        ("content-length 4097", [head("Content-Length: 4097\r\n").into_bytes(), vec![b'x'; 4097]].concat()),
        ("no content-length", head("").into_bytes()),
        ("chunked", [head("Transfer-Encoding: chunked\r\n").as_bytes(), b"4\r\nnone\r\n0\r\n\r\n"].concat()),
        (
            "chunked and length",
            [head("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n").as_bytes(), b"none"].concat(),
        ),
        ("non-numeric length", [head("Content-Length: four\r\n").as_bytes(), b"none"].concat()),
        ("conflicting lengths", [head("Content-Length: 4\r\nContent-Length: 5\r\n").as_bytes(), b"none!"].concat()),
    ];
    for (what, request) in cases {
        let mut raw = server.raw().await;
        raw.send(&request).await;
        let received = raw.until_closed().await;
        assert!(received.is_empty(), "{what}: device sent {:?}", String::from_utf8_lossy(&received));
    }
    // The largest body ESP accepts is fine.
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, &[b'x'; 4096], "")).await;
    assert_eq!(raw.response().await.status, 200);
    server.assert_serving().await;
}

#[tokio::test]
async fn unknown_targets_get_404_and_close() {
    let server = server().await;
    for target in ["/nothing", "/proto-ver?x=1", "/", "/PROTO-VER", "/proto-ver/", "*", "http://test/proto-ver"] {
        let mut raw = server.raw().await;
        let request = format!("POST {target} HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\n---");
        raw.send(request.as_bytes()).await;
        let response = raw.response().await;
        assert_eq!(response.status, 404, "{target}");
        assert!(response.head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{target}");
        assert_eq!(response.body, b"Nothing matches the given URI");
        assert!(raw.until_closed().await.is_empty(), "{target}: connection not closed after 404");
    }
    // Even with a body ESP would refuse, the target is checked first (as on ESP).
    let mut raw = server.raw().await;
    raw.send(b"GET /favicon.ico HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(raw.response().await.status, 404);
    server.assert_serving().await;
}

#[tokio::test]
async fn other_methods_get_405_and_close() {
    let server = server().await;
    for request in [
        format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", names::PROTO_VER),
        format!("PUT /{} HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\n---", names::PROV_SESSION),
        format!("post /{} HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\n---", names::PROTO_VER),
    ] {
        let mut raw = server.raw().await;
        raw.send(request.as_bytes()).await;
        let response = raw.response().await;
        assert_eq!(response.status, 405, "{request}");
        assert!(response.head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert_eq!(response.header("Allow"), Some("POST"), "{request}");
        assert!(raw.until_closed().await.is_empty(), "connection not closed after 405");
    }
    server.assert_serving().await;
}

#[tokio::test]
async fn malformed_and_oversized_heads_get_4xx_and_close() {
    let server = server().await;
    let mut raw = server.raw().await;
    raw.send(b"POST /proto-ver HTTP/1.1\r\nthis is not a header\r\n\r\n").await;
    assert_eq!(raw.response().await.status, 400);
    assert!(raw.until_closed().await.is_empty());

    let mut raw = server.raw().await;
    let huge = format!("POST /proto-ver HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "a".repeat(10_000));
    raw.send(huge.as_bytes()).await;
    assert_eq!(raw.response().await.status, 431);
    server.assert_serving().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = server().await;
    let mut raw = server.raw().await;
    let both = [post(names::PROTO_VER, b"a", ""), post(names::PROTO_VER, b"b", "")].concat();
    raw.send(&both).await;
    let first = raw.response().await;
    let second = raw.response().await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.header("Set-Cookie"), None, "proto-ver opens no session");
    assert_eq!(second.body, VERSION.as_bytes());
}

#[tokio::test]
async fn the_client_can_ask_to_close() {
    let server = server().await;
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, b"---", "Connection: close\r\n")).await;
    let response = raw.response().await;
    assert_eq!(response.header("Connection"), Some("close"));
    assert!(raw.until_closed().await.is_empty());

    let mut raw = server.raw().await;
    raw.send(b"POST /proto-ver HTTP/1.0\r\nContent-Length: 3\r\n\r\n---").await;
    assert_eq!(raw.response().await.status, 200);
    assert!(raw.until_closed().await.is_empty(), "HTTP/1.0 without keep-alive is closed after the response");
}

#[tokio::test]
async fn a_stalled_request_head_is_dropped_after_the_header_timeout() {
    let mut config = HttpConfig::default();
    config.header_timeout = Duration::from_millis(200);
    let pc = protocomm(sec1(), SessionLimits::default());
    let server = Server::start_with(pc, Box::new(SeededRandom::new(1)), config).await;
    let mut raw = server.raw().await;
    raw.send(b"POST /proto-ver HTTP/1.1\r\nHost: te").await;
    raw.assert_closed_silently().await;
    server.assert_serving().await;
}

#[tokio::test]
async fn a_newcomer_beyond_the_limit_closes_a_waiting_connection() {
    let mut config = HttpConfig::default();
    config.max_connections = 1;
    let pc = protocomm(sec1(), SessionLimits::default());
    let server = Server::start_with(pc, Box::new(SeededRandom::new(1)), config).await;
    let mut first = server.raw().await;
    first.send(&post(names::PROTO_VER, b"---", "")).await;
    assert_eq!(first.response().await.status, 200);

    // The only slot is taken by a connection waiting for its next request: the newcomer gets it.
    let mut second = server.raw().await;
    second.send(&post(names::PROTO_VER, b"---", "")).await;
    assert_eq!(second.response().await.status, 200);
    assert!(first.until_closed().await.is_empty(), "the waiting connection was closed, silently");
}

#[tokio::test]
async fn a_newcomer_waits_while_every_connection_is_being_answered() {
    let mut config = HttpConfig::default();
    config.max_connections = 1;
    let mut pc = protocomm(sec1(), SessionLimits::default());
    let mut gate = Gate::install(&mut pc);
    let server = Server::start_with(pc, Box::new(SeededRandom::new(1)), config).await;
    let mut busy = server.client().await;
    let mut session = handshake(&mut busy, sec1_client(), 50).await;
    let in_flight = tokio::spawn(async move { call(&mut busy, &mut session, BLOCK, b"scan").await });
    gate.entered().await;

    // The second connection is accepted by the kernel but not served while the first one's request runs.
    let mut second = server.raw().await;
    second.send(&post(names::PROTO_VER, b"---", "")).await;
    let waiting = tokio::spawn(async move { second.response().await.status });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    gate.release();
    assert_eq!(within(in_flight).await.unwrap().unwrap(), b"released", "a request being handled is never cut off");
    assert_eq!(within(waiting).await.unwrap(), 200);
}

#[tokio::test]
async fn blank_lines_do_not_keep_a_connection_open() {
    let mut config = HttpConfig::default();
    config.header_timeout = Duration::from_millis(300);
    let pc = protocomm(sec1(), SessionLimits::default());
    let server = Server::start_with(pc, Box::new(SeededRandom::new(1)), config).await;
    let raw = server.raw().await;
    // The device closes it once the first request's head is overdue, blank lines or not.
    let received = raw.drip_until_closed(b"\r\n", Duration::from_millis(20)).await;
    assert!(received.is_empty(), "{received:?}");
    server.assert_serving().await;
}

/// A server whose header timeout is far beyond [`PATIENCE`]: an answer that arrives at all arrived without
/// waiting for it.
async fn patient_server() -> Server {
    let mut config = HttpConfig::default();
    config.header_timeout = Duration::from_secs(3600);
    Server::start_with(protocomm(sec1(), SessionLimits::default()), Box::new(SeededRandom::new(1)), config).await
}

#[tokio::test]
async fn bare_lf_line_endings_get_400_at_once() {
    let server = patient_server().await;
    for request in [
        b"POST /proto-ver HTTP/1.1\nHost: x\nContent-Length: 0\n\n".as_slice(),
        b"POST /proto-ver HTTP/1.1\nHost: x\nContent-Length: 3\n\n---",
        b"POST /proto-ver HTTP/1.1\r\nHost: x\nContent-Length: 3\r\n\r\n---",
        b"POST /proto-ver HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\n---",
        b"\n\nPOST /proto-ver HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n---",
    ] {
        let what = String::from_utf8_lossy(request);
        let mut raw = server.raw().await;
        raw.send(request).await;
        let response = raw.response().await;
        assert_eq!(response.status, 400, "{what:?}");
        assert_eq!(response.body, b"Malformed request", "{what:?}");
        assert_eq!(response.header("Connection"), Some("close"), "{what:?}");
        assert!(raw.until_closed().await.is_empty(), "{what:?}: connection not closed after 400");
    }
    server.assert_serving().await;
}

#[tokio::test]
async fn a_bare_lf_after_a_good_request_gets_400_on_the_same_connection() {
    let server = patient_server().await;
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, b"---", "")).await;
    assert_eq!(raw.response().await.status, 200);
    raw.send(b"POST /proto-ver HTTP/1.1\nContent-Length: 3\n\n---").await;
    assert_eq!(raw.response().await.status, 400);
    assert!(raw.until_closed().await.is_empty());
}

#[tokio::test]
async fn head_gets_the_get_answers_head_and_no_body() {
    let server = patient_server().await;
    let cases = [
        (format!("/{}", names::PROTO_VER), 405, "Only POST is accepted on this URI"),
        ("/nothing".to_owned(), 404, "Nothing matches the given URI"),
    ];
    for (target, status, body) in cases {
        let mut raw = server.raw().await;
        raw.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await;
        let get = raw.response().await;
        assert_eq!((get.status, get.body.as_slice()), (status, body.as_bytes()));

        let mut raw = server.raw().await;
        raw.send(format!("HEAD {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await;
        // Everything the device sends before closing: the head and nothing after it.
        let received = String::from_utf8(raw.until_closed().await).unwrap();
        assert_eq!(received, get.head, "HEAD {target}");
        assert!(received.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{received}");
        if status == 405 {
            assert!(received.contains("\r\nAllow: POST\r\n"), "{received}");
        }
    }
    // A HEAD request too broken to parse still gets no body with its 400.
    let mut raw = server.raw().await;
    raw.send(b"HEAD /proto-ver HTTP/1.1\r\nthis is not a header\r\n\r\n").await;
    let received = String::from_utf8(raw.until_closed().await).unwrap();
    assert!(received.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{received}");
    assert!(received.ends_with("\r\n\r\n"), "{received}");
    server.assert_serving().await;
}

#[tokio::test]
async fn too_many_header_fields_get_431() {
    let server = patient_server().await;
    let fields: String = (0..40).map(|i| format!("X-Filler-{i}: a\r\n")).collect();
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, b"---", &fields)).await;
    let response = raw.response().await;
    assert_eq!(response.status, 431);
    assert!(raw.until_closed().await.is_empty());

    // esp_prov's six fields and a few more are fine.
    let mut raw = server.raw().await;
    raw.send(&post(names::PROTO_VER, b"---", "X-A: 1\r\nX-B: 2\r\nUser-Agent: test\r\n")).await;
    assert_eq!(raw.response().await.status, 200);
    server.assert_serving().await;
}
