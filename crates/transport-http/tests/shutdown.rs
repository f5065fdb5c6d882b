//! Graceful shutdown: stop accepting, close idle connections, finish requests in flight (bounded).

use std::time::Duration;

use tokio::net::TcpStream;
use wifiprov_proto::endpoint::{SessionLimits, names};
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::{HttpConfig, TransportError};

use crate::common::*;

#[tokio::test]
async fn returns_promptly_when_idle() {
    let mut server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    server.assert_serving().await;
    server.request_stop();
    server.stopped().await;
    assert!(TcpStream::connect(server.addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn finishes_the_request_in_flight_and_closes_idle_connections() {
    let mut pc = protocomm(sec1(), SessionLimits::default());
    let mut gate = Gate::install(&mut pc);
    let mut server = Server::start(pc).await;

    let mut busy = server.client().await;
    let mut busy_session = handshake(&mut busy, sec1_client(), 40).await;
    let in_flight = tokio::spawn(async move {
        let reply = call(&mut busy, &mut busy_session, BLOCK, b"scan").await;
        (reply, busy)
    });
    gate.entered().await;

    // An idle keep-alive connection that already made a request.
    let mut idle = server.raw().await;
    idle.send(&post(names::PROTO_VER, b"---", "")).await;
    assert_eq!(idle.response().await.status, 200);

    server.request_stop();
    // The idle connection is closed without waiting for the busy one.
    assert!(idle.until_closed().await.is_empty());
    // The request in flight still gets its answer, marked as the last one on its connection.
    gate.release();
    let (reply, busy) = within(in_flight).await.unwrap();
    assert_eq!(reply.unwrap(), b"released");
    assert!(!busy.is_connected(), "the response said Connection: close");
    server.stopped().await;
}

#[tokio::test]
async fn a_stuck_request_does_not_hold_shutdown_beyond_the_grace_period() {
    let mut pc = protocomm(sec1(), SessionLimits::default());
    let mut gate = Gate::install(&mut pc);
    let mut config = HttpConfig::default();
    config.shutdown_grace = Duration::from_millis(100);
    let mut server = Server::start_with(pc, Box::new(SeededRandom::new(1)), config).await;

    let mut busy = server.client().await;
    let mut busy_session = handshake(&mut busy, sec1_client(), 41).await;
    let in_flight = tokio::spawn(async move { call(&mut busy, &mut busy_session, BLOCK, b"forever").await });
    gate.entered().await;

    server.request_stop();
    server.stopped().await;
    // The connection was dropped without an answer.
    let err = within(in_flight).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::ConnectionClosed { .. }), "{err:?}");

    // The dropped request took its session with it: it is closed rather than left checked out for ever.
    gate.release();
    assert_eq!(server.session_count(), 0);
}
