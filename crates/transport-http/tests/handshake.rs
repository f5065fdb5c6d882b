//! Complete security handshakes and encrypted requests over HTTP.

use wifiprov_proto::endpoint::{SessionLimits, names};

use crate::common::*;

#[tokio::test]
async fn sec1_handshake_and_encrypted_echo() {
    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    assert_eq!(within(client.request(names::PROTO_VER, b"---")).await.unwrap(), VERSION.as_bytes());
    assert_eq!(client.cookie(), None, "proto-ver opens no session");
    let mut session = handshake(&mut client, sec1_client(), 10).await;
    let cookie = client.cookie().expect("the handshake's first answer sets a cookie").to_owned();
    for i in 0..5u8 {
        assert_echo(&mut client, &mut session, &[b'a' + i; 40]).await;
    }
    assert_eq!(client.cookie(), Some(cookie.as_str()), "the session never changed");
    assert_eq!(server.session_count(), 1);
}

#[tokio::test]
async fn sec2_handshake_and_encrypted_echo() {
    let server = Server::start(protocomm(sec2(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut session = handshake(&mut client, sec2_client(), 11).await;
    assert!(client.cookie().is_some());
    for message in [b"x".as_slice(), b"hello over http", &[0u8; 3000]] {
        assert_echo(&mut client, &mut session, message).await;
    }
}

#[tokio::test]
async fn sec1_wrong_pop_is_refused_without_response() {
    use wifiprov_proto::secret::ProofOfPossession;
    use wifiprov_proto::security::{ClientSecurity, ClientSession};
    use wifiprov_testkit::SeededRandom;
    use wifiprov_transport_http::TransportError;

    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut rng = SeededRandom::new(12);
    let mut session = ClientSession::new(ClientSecurity::sec1(ProofOfPossession::from("wrong")));
    let cmd0 = session.start(&mut rng).unwrap();
    let resp0 = within(client.request(names::PROV_SESSION, &cmd0)).await.unwrap();
    let cmd1 = session.handle_response(&resp0, &mut rng).unwrap().unwrap();
    let err = within(client.request(names::PROV_SESSION, &cmd1)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::ConnectionClosed { ref endpoint } if endpoint == names::PROV_SESSION),
        "{err:?}"
    );
    assert!(!client.is_connected());
    server.assert_serving().await;
}
