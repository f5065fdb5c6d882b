//! The client half on its own, including against hand-scripted servers.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wifiprov_proto::endpoint::{SessionLimits, names};
use wifiprov_transport_http::{ClientConfig, HttpClient, TransportError};

use crate::common::*;

#[tokio::test]
async fn non_200_is_a_status_error_and_the_connection_must_be_reopened() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    match within(client.request("no-such-endpoint", b"---")).await {
        Err(TransportError::Status { endpoint, status: 404, body, .. }) => {
            assert_eq!(endpoint, "no-such-endpoint");
            assert_eq!(body, b"Nothing matches the given URI");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    // The device closed after the 404; the client does not reconnect on its own.
    assert!(!client.is_connected());
    let err = within(client.request(names::PROTO_VER, b"---")).await.unwrap_err();
    assert!(matches!(err, TransportError::NotConnected { .. }), "{err:?}");
    within(client.reconnect()).await.unwrap();
    assert_eq!(within(client.request(names::PROTO_VER, b"---")).await.unwrap(), VERSION.as_bytes());
}

#[tokio::test]
async fn a_refused_request_is_connection_closed_and_the_cookie_survives() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut session = handshake(&mut client, sec1_client(), 30).await;
    let cookie = client.cookie().unwrap().to_owned();
    let err = within(client.request(names::PROV_SESSION, b"\xff\xff")).await.unwrap_err();
    assert!(matches!(err, TransportError::ConnectionClosed { .. }), "{err:?}");
    assert_eq!(err.to_string(), "prov-session: device closed the connection without a response");
    within(client.reconnect()).await.unwrap();
    assert_eq!(client.cookie(), Some(cookie.as_str()));
    // A failed handshake message resets the device session (as on ESP); start over in the same session.
    let _ = &mut session;
    let mut session = handshake(&mut client, sec1_client(), 31).await;
    assert_echo(&mut client, &mut session, b"again").await;
    assert_eq!(client.cookie(), Some(cookie.as_str()));
}

#[tokio::test]
async fn bad_endpoint_names_and_cookies_are_refused_locally() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    for name in ["", "a b", "proto-ver?x", "a#b", "a\r\nX: y", "é"] {
        let err = within(client.request(name, b"-")).await.unwrap_err();
        assert!(matches!(err, TransportError::InvalidEndpoint { .. }), "{name:?}: {err:?}");
    }
    assert!(client.is_connected());
    assert!(matches!(client.set_cookie(Some("a\r\nb")), Err(TransportError::InvalidCookie { .. })));
    assert!(matches!(client.set_cookie(Some("")), Err(TransportError::InvalidCookie { .. })));
    client.set_cookie(None).unwrap();
    within(client.request(names::PROTO_VER, b"---")).await.unwrap();
}

#[tokio::test]
async fn sends_the_request_esp_prov_sends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let device = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for reply in [
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\nSet-Cookie: session=77; Path=/\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ] {
            let mut buf = vec![0u8; 4096];
            let mut request = Vec::new();
            while !request.ends_with(b"body") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0);
                request.extend_from_slice(&buf[..n]);
            }
            seen.push(String::from_utf8(request).unwrap());
            stream.write_all(reply.as_bytes()).await.unwrap();
        }
        seen
    });
    let mut client = within(HttpClient::connect(addr)).await.unwrap();
    assert_eq!(within(client.request("prov-config", b"body")).await.unwrap(), b"ok");
    assert_eq!(client.cookie(), Some("session=77"));
    assert_eq!(within(client.request("prov-config", b"body")).await.unwrap(), b"ok");
    let seen = within(device).await.unwrap();
    let host = addr.to_string();
    assert_eq!(
        seen[0],
        format!(
            "POST /prov-config HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Accept: text/plain\r\nContent-Length: 4\r\n\r\nbody"
        )
    );
    assert_eq!(
        seen[1],
        format!(
            "POST /prov-config HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Accept: text/plain\r\nContent-Length: 4\r\nCookie: session=77\r\n\r\nbody"
        )
    );
}

/// A server that answers each request with the next canned response, then closes.
async fn scripted_device(responses: Vec<&'static [u8]>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        for response in responses {
            let mut buf = vec![0u8; 4096];
            let mut request = Vec::new();
            // Every test request has the 3-byte body "---".
            while !request.ends_with(b"---") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response).await.unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn understands_chunked_close_delimited_and_interim_responses() {
    let addr = scripted_device(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    ])
    .await;
    let mut client = within(HttpClient::connect(addr)).await.unwrap();
    assert_eq!(within(client.request("x", b"---")).await.unwrap(), b"abcde");
    assert_eq!(within(client.request("x", b"---")).await.unwrap(), b"");
    // A close-delimited body is read to the end; the connection is gone afterwards.
    let reply = tokio::spawn(async move { (client.request("x", b"---").await, client) });
    let (reply, client) = within(reply).await.unwrap();
    // The scripted device closes right after its last response.
    assert_eq!(reply.unwrap(), b"until the end");
    assert!(!client.is_connected());
}

#[tokio::test]
async fn malformed_and_oversized_responses_are_errors() {
    for (response, expect_large) in [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab".as_slice(), false),
        (b"SSH-2.0-OpenSSH\r\n\r\n", false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n", true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false),
    ] {
        let addr = scripted_device(vec![response]).await;
        let mut config = ClientConfig::default();
        config.max_response = 1024;
        let mut client = within(HttpClient::connect_with(addr, config)).await.unwrap();
        let err = within(client.request("x", b"---")).await.unwrap_err();
        if expect_large {
            assert!(matches!(err, TransportError::ResponseTooLarge { limit: 1024, .. }), "{err:?}");
        } else {
            assert!(matches!(err, TransportError::MalformedResponse { .. }), "{err:?}");
        }
        assert!(!client.is_connected());
    }
}

#[tokio::test]
async fn a_silent_device_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ClientConfig::default();
    config.request_timeout = Duration::from_millis(200);
    let mut client = within(HttpClient::connect_with(addr, config)).await.unwrap();
    let (_held, _) = listener.accept().await.unwrap();
    let err = within(client.request("x", b"---")).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    assert!(!client.is_connected());
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = within(HttpClient::connect(addr)).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    let err = within(HttpClient::connect("bad host:80")).await.unwrap_err();
    assert!(matches!(err, TransportError::InvalidTarget { .. }), "{err:?}");
    let err = within(HttpClient::connect(format!("localhost:{}", addr.port()))).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
}
