//! Hostile and broken input: each case gets a typed error, nothing panics, and the session is left in a state
//! from which a correct client can still succeed.

use proptest::prelude::*;
use wifiprov_proto::danger;
use wifiprov_proto::security::{Blame, ClientSession, DeviceSession, Sec2Patch, SecurityError};
use wifiprov_testkit::{BrokenRandom, SeededRandom, hex_field, vectors};

use crate::common::{PASSWORD, USERNAME, handshake, sec1_client, sec1_device, sec2_client, sec2_device};

/// Minimal protobuf encoding, independent of the crate under test.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
fn int_field(num: u64, v: u64) -> Vec<u8> {
    [varint(num << 3), varint(v)].concat()
}
fn bytes_field(num: u64, b: &[u8]) -> Vec<u8> {
    [varint((num << 3) | 2), varint(b.len() as u64), b.to_vec()].concat()
}
/// `SessionData { sec_ver, <scheme payload field> { msg, <payload field> { body } } }`
fn session(sec_ver: u64, scheme_field: u64, msg: u64, payload: Option<(u64, Vec<u8>)>) -> Vec<u8> {
    let mut inner = int_field(1, msg);
    if let Some((num, body)) = payload {
        inner.extend(bytes_field(num, &body));
    }
    [int_field(2, sec_ver), bytes_field(scheme_field, &inner)].concat()
}
fn sec1(msg: u64, payload: Option<(u64, Vec<u8>)>) -> Vec<u8> {
    session(1, 11, msg, payload)
}
fn sec2(msg: u64, payload: Option<(u64, Vec<u8>)>) -> Vec<u8> {
    session(2, 12, msg, payload)
}
fn sec2_cmd0(username: &[u8], a: &[u8]) -> Vec<u8> {
    sec2(0, Some((20, [bytes_field(1, username), bytes_field(2, a)].concat())))
}
fn n_bytes() -> Vec<u8> {
    // N itself, the RFC 5054 3072-bit prime: a client key A = N is 0 mod N.
    wifiprov_testkit::unhex(wifiprov_proto::security::srp::MODULUS_HEX)
}

fn rng() -> SeededRandom {
    SeededRandom::new(42)
}

#[track_caller]
fn assert_unexpected(result: Result<Vec<u8>, SecurityError>) {
    match result {
        Err(SecurityError::UnexpectedMessage { .. }) => {}
        other => panic!("expected UnexpectedMessage, got {other:?}"),
    }
}

#[test]
fn sec1_command1_before_command0() {
    let mut d = DeviceSession::new(&sec1_device("pop"));
    assert_unexpected(d.handle_handshake(&sec1(2, Some((22, bytes_field(2, &[0; 32])))), &mut rng()));
}

#[test]
fn sec1_message_type_and_payload_must_agree() {
    let key = bytes_field(1, &[9; 32]);
    for (msg, payload) in [
        (0, None),                                 // Command0 without sc0
        (0, Some((22, bytes_field(2, &[0; 32])))), // Command0 carrying sc1
        (2, Some((20, key.clone()))),              // Command1 carrying sc0
        (1, Some((20, key.clone()))),              // a response type from the client
        (9, Some((20, key))),                      // unknown type
    ] {
        let mut d = DeviceSession::new(&sec1_device("pop"));
        assert_unexpected(d.handle_handshake(&sec1(msg, payload), &mut rng()));
    }
}

#[test]
fn sec1_client_key_must_be_32_bytes_and_not_low_order() {
    for len in [0, 31, 33] {
        let mut d = DeviceSession::new(&sec1_device("pop"));
        let err = d.handle_handshake(&sec1(0, Some((20, bytes_field(1, &vec![7; len])))), &mut rng()).unwrap_err();
        assert!(matches!(err, SecurityError::InvalidLength { field: "client_pubkey", .. }), "{err:?}");
    }
    // u = 0 and u = 1 are small-order points: the shared secret would not depend on our key.
    for point in [[0u8; 32], {
        let mut p = [0u8; 32];
        p[0] = 1;
        p
    }] {
        let mut d = DeviceSession::new(&sec1_device("pop"));
        let err = d.handle_handshake(&sec1(0, Some((20, bytes_field(1, &point)))), &mut rng()).unwrap_err();
        assert!(matches!(err, SecurityError::InvalidPublicKey(_)), "{err:?}");
    }
}

#[test]
fn wrong_sec_ver_or_payload_scheme_is_refused() {
    let sec1_cmd0 = bytes_field(1, &[9; 32]);
    let cases: [(Vec<u8>, DeviceSession); 4] = [
        // sec_ver 2 around a security 1 payload
        (session(2, 11, 0, Some((20, sec1_cmd0.clone()))), DeviceSession::new(&sec1_device("pop"))),
        // sec_ver 1 around a security 2 payload
        (session(1, 12, 0, Some((20, sec1_cmd0.clone()))), DeviceSession::new(&sec2_device(Sec2Patch::Counter))),
        // a consistent security 1 message sent to a security 2 device
        (sec1(0, Some((20, sec1_cmd0.clone()))), DeviceSession::new(&sec2_device(Sec2Patch::Counter))),
        // a security 0 command sent to a security 1 device
        (session(0, 10, 0, Some((20, vec![]))), DeviceSession::new(&sec1_device("pop"))),
    ];
    for (message, mut device) in cases {
        let err = device.handle_handshake(&message, &mut rng()).unwrap_err();
        assert!(matches!(err, SecurityError::WrongScheme { .. }), "{err:?}");
        assert_eq!(err.blame(), Blame::PeerMisbehaved);
    }
}

#[test]
fn garbage_is_malformed() {
    for bytes in [&[0xff, 0xff, 0xff][..], &[0x12, 0x05, 0x01], &[0x5a, 0x80]] {
        let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
        let err = d.handle_handshake(bytes, &mut rng()).unwrap_err();
        assert_eq!(err.blame(), Blame::Malformed, "{err:?}");
    }
}

#[test]
fn sec2_username_length_limits() {
    let a = vec![5; 384];
    for username in [vec![], vec![b'u'; 65536]] {
        let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
        let err = d.handle_handshake(&sec2_cmd0(&username, &a), &mut rng()).unwrap_err();
        assert!(matches!(err, SecurityError::InvalidLength { field: "client_username", .. }), "{err:?}");
    }
    // 65535 is the largest username ESP accepts: a valid A with it must get a response.
    let mut client = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    let mut r = rng();
    let cmd0 = client.start(&mut r).unwrap();
    let a = &cmd0[cmd0.len() - 384..];
    let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
    d.handle_handshake(&sec2_cmd0(&vec![b'u'; 65535], a), &mut r).unwrap();
}

/// The first length-delimited field `num` of a protobuf message.
fn field(message: &[u8], num: u64) -> Option<Vec<u8>> {
    let mut rest = message;
    let read_varint = |rest: &mut &[u8]| -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first()?;
            *rest = tail;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    while !rest.is_empty() {
        let key = read_varint(&mut rest)?;
        match key & 7 {
            0 => {
                read_varint(&mut rest)?;
            }
            2 => {
                let len = usize::try_from(read_varint(&mut rest)?).ok()?;
                let (value, tail) = rest.split_at_checked(len)?;
                if key >> 3 == num {
                    return Some(value.to_vec());
                }
                rest = tail;
            }
            _ => return None,
        }
    }
    None
}

/// Espressif's Python clients send A minimal, so 383 bytes once in 256 sessions, and hash it so in M1; an ESP
/// device refuses those sessions, we complete them.
#[test]
fn sec2_a_client_key_sent_short_completes_the_handshake() {
    use wifiprov_proto::security::srp;
    let mut r = rng();
    let (a, a_pub) = loop {
        let mut a = [0u8; 32];
        wifiprov_proto::rng::SecureRandom::fill(&mut r, &mut a).unwrap();
        a[0] |= 0x80;
        let a_pub = srp::client_public_ephemeral(&a);
        if a_pub[0] == 0 {
            break (a, a_pub[1..].to_vec());
        }
    };
    assert_eq!(a_pub.len(), 383);
    let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
    let resp0 = d.handle_handshake(&sec2_cmd0(USERNAME.as_bytes(), &a_pub), &mut r).unwrap();
    let sr0 = field(&field(&resp0, 12).unwrap(), 21).unwrap();
    let (b_pub, salt) = (field(&sr0, 2).unwrap(), field(&sr0, 3).unwrap());
    let x = srp::client_x(USERNAME.as_bytes(), PASSWORD.as_bytes(), &salt);
    let k = srp::client_session_key(&a, &a_pub, &b_pub, &x).unwrap();
    let m1 = srp::client_proof(USERNAME.as_bytes(), &salt, &a_pub, &b_pub, &k);
    let resp1 = d.handle_handshake(&sec2(2, Some((22, bytes_field(1, &m1)))), &mut r).unwrap();
    let sr1 = field(&field(&resp1, 12).unwrap(), 23).unwrap();
    assert_eq!(field(&sr1, 2).unwrap(), srp::server_proof(&a_pub, &m1, &k), "the device proves the same key");
    assert!(d.is_established());
}

#[test]
fn sec2_client_key_must_be_1_to_384_bytes_and_nonzero_mod_n() {
    for len in [0, 385] {
        let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
        let err = d.handle_handshake(&sec2_cmd0(USERNAME.as_bytes(), &vec![3; len]), &mut rng()).unwrap_err();
        assert!(matches!(err, SecurityError::InvalidLength { field: "client_pubkey", .. }), "{err:?}");
    }
    for a in [vec![0u8; 384], n_bytes()] {
        let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
        let err = d.handle_handshake(&sec2_cmd0(USERNAME.as_bytes(), &a), &mut rng()).unwrap_err();
        assert!(matches!(err, SecurityError::InvalidPublicKey(_) | SecurityError::Srp(_)), "{err:?}");
        assert_eq!(err.blame(), Blame::PeerMisbehaved);
    }
}

#[test]
fn sec2_command1_before_command0_and_bad_proof_length() {
    let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
    assert_unexpected(d.handle_handshake(&sec2(2, Some((22, bytes_field(1, &[0; 64])))), &mut rng()));

    let mut r = rng();
    let mut client = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    let cmd0 = client.start(&mut r).unwrap();
    d.handle_handshake(&cmd0, &mut r).unwrap();
    let err = d.handle_handshake(&sec2(2, Some((22, bytes_field(1, &[0; 63])))), &mut r).unwrap_err();
    assert!(matches!(err, SecurityError::InvalidLength { field: "client_proof", .. }), "{err:?}");
}

#[test]
fn wrong_pop_is_refused_and_resets_the_session() {
    let mut r = rng();
    let mut d = DeviceSession::new(&sec1_device("right"));
    let mut c = ClientSession::new(sec1_client("wrong"));
    let resp0 = d.handle_handshake(&c.start(&mut r).unwrap(), &mut r).unwrap();
    let cmd1 = c.handle_response(&resp0, &mut r).unwrap().unwrap();
    let err = d.handle_handshake(&cmd1, &mut r).unwrap_err();
    assert!(matches!(err, SecurityError::PopMismatch), "{err:?}");
    assert_eq!(err.blame(), Blame::AuthFailed);
    // The keys are gone: replaying Command1 does not get a second guess.
    assert_unexpected(d.handle_handshake(&cmd1, &mut r));
    assert!(!d.is_established());
    // A correct client starting over succeeds on the same session.
    handshake(&sec1_device("right"), sec1_client("right"), &mut r);
}

#[test]
fn wrong_password_or_username_is_refused() {
    for client in [
        sec2_client("abcd1235", Sec2Patch::Counter),
        wifiprov_proto::security::ClientSecurity::sec2("other", PASSWORD.into(), Sec2Patch::Counter),
    ] {
        let mut r = rng();
        let mut d = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
        let mut c = ClientSession::new(client);
        let resp0 = d.handle_handshake(&c.start(&mut r).unwrap(), &mut r).unwrap();
        let cmd1 = c.handle_response(&resp0, &mut r).unwrap().unwrap();
        let err = d.handle_handshake(&cmd1, &mut r).unwrap_err();
        assert!(matches!(err, SecurityError::ClientProofMismatch), "{err:?}");
        assert_eq!(err.blame(), Blame::AuthFailed);
        assert!(!d.is_established());
    }
}

#[test]
fn client_detects_a_device_that_cannot_prove_the_key() {
    // Flip one bit of the device's proof (sec2: inside M2; sec1: inside the device verifier).
    for (device, client) in [
        (sec2_device(Sec2Patch::Counter), sec2_client(PASSWORD, Sec2Patch::Counter)),
        (sec1_device("pop"), sec1_client("pop")),
    ] {
        let mut r = rng();
        let mut d = DeviceSession::new(&device);
        let mut c = ClientSession::new(client);
        let resp0 = d.handle_handshake(&c.start(&mut r).unwrap(), &mut r).unwrap();
        let cmd1 = c.handle_response(&resp0, &mut r).unwrap().unwrap();
        let mut resp1 = d.handle_handshake(&cmd1, &mut r).unwrap();
        let last_proof_byte = if device.version().number() == 2 { resp1.len() - 15 } else { resp1.len() - 1 };
        resp1[last_proof_byte] ^= 1;
        let err = c.handle_response(&resp1, &mut r).unwrap_err();
        assert!(matches!(err, SecurityError::DeviceProofMismatch), "{err:?}");
        assert!(!c.is_established());
    }
}

#[test]
fn command0_restarts_an_established_session() {
    for (device, first, second) in [
        (sec1_device("pop"), sec1_client("pop"), sec1_client("pop")),
        (
            sec2_device(Sec2Patch::Counter),
            sec2_client(PASSWORD, Sec2Patch::Counter),
            sec2_client(PASSWORD, Sec2Patch::Counter),
        ),
    ] {
        let mut r = rng();
        let (mut d, mut old) = handshake(&device, first, &mut r);
        let mut new = ClientSession::new(second);
        let resp0 = d.handle_handshake(&new.start(&mut r).unwrap(), &mut r).unwrap();
        assert!(!d.is_established(), "Command0 must drop the established keys");
        let mut body = b"stale".to_vec();
        old.encrypt(&mut body).unwrap();
        assert!(matches!(d.decrypt(&mut body), Err(SecurityError::NotEstablished)));
        let cmd1 = new.handle_response(&resp0, &mut r).unwrap().unwrap();
        let resp1 = d.handle_handshake(&cmd1, &mut r).unwrap();
        assert_eq!(new.handle_response(&resp1, &mut r).unwrap(), None);
        let mut request = b"fresh".to_vec();
        new.encrypt(&mut request).unwrap();
        d.decrypt(&mut request).unwrap();
        assert_eq!(request, b"fresh");
    }
}

#[test]
fn gcm_tag_failure_does_not_advance_the_counter() {
    let mut r = rng();
    let (mut d, mut c) = handshake(&sec2_device(Sec2Patch::Counter), sec2_client(PASSWORD, Sec2Patch::Counter), &mut r);
    let mut genuine = b"request one".to_vec();
    c.encrypt(&mut genuine).unwrap();
    for tamper in 0..genuine.len() {
        let mut forged = genuine.clone();
        forged[tamper] ^= 0x80;
        assert!(matches!(d.decrypt(&mut forged), Err(SecurityError::DecryptFailed)));
    }
    assert!(matches!(d.decrypt(&mut vec![1; 15]), Err(SecurityError::InvalidLength { .. })));
    let mut request = genuine.clone();
    d.decrypt(&mut request).unwrap();
    assert_eq!(request, b"request one");
    // Both sides still agree on the next nonce.
    let mut response = b"response one".to_vec();
    d.encrypt(&mut response).unwrap();
    c.decrypt(&mut response).unwrap();
    assert_eq!(response, b"response one");
    // A replay of the first request uses a stale nonce and is refused.
    assert!(matches!(d.decrypt(&mut genuine), Err(SecurityError::DecryptFailed)));
}

#[test]
fn ordinary_data_before_the_handshake_is_refused() {
    for device in [sec1_device("pop"), sec2_device(Sec2Patch::Counter)] {
        let mut d = DeviceSession::new(&device);
        assert!(matches!(d.decrypt(&mut b"x".to_vec()), Err(SecurityError::NotEstablished)));
        assert!(matches!(d.encrypt(&mut b"x".to_vec()), Err(SecurityError::NotEstablished)));
    }
    let mut c = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    assert!(matches!(c.encrypt(&mut b"x".to_vec()), Err(SecurityError::NotEstablished)));
}

#[test]
fn a_failing_random_source_is_an_error() {
    let v = &vectors("esp-security-vectors.json")["sec1"];
    let mut d = DeviceSession::new(&sec1_device("abcd1234"));
    let err = d.handle_handshake(&hex_field(v, "cmd0_bytes"), &mut BrokenRandom).unwrap_err();
    assert!(matches!(err, SecurityError::Random(_)));
    assert_eq!(err.blame(), Blame::Environment);
    let mut c = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    assert!(matches!(c.start(&mut BrokenRandom), Err(SecurityError::Random(_))));
}

#[test]
fn unsolicited_responses_are_refused_by_the_client() {
    let v = &vectors("esp-security-vectors.json")["sec1"];
    let mut c = ClientSession::new(sec1_client("abcd1234"));
    let err = c.handle_response(&hex_field(v, "resp0_bytes"), &mut rng()).unwrap_err();
    assert!(matches!(err, SecurityError::UnexpectedMessage { .. }), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes at every handshake stage never panic, and a failure never leaves a half-open session.
    #[test]
    fn arbitrary_handshake_bytes_never_panic(garbage in proptest::collection::vec(any::<u8>(), 0..600), stage in 0usize..3) {
        let mut r = rng();
        for (device, client) in [
            (danger::sec0(), wifiprov_proto::security::ClientSecurity::sec0()),
            (sec1_device("pop"), sec1_client("pop")),
            (sec2_device(Sec2Patch::Counter), sec2_client(PASSWORD, Sec2Patch::Counter)),
        ] {
            let mut d = DeviceSession::new(&device);
            let mut c = ClientSession::new(client);
            let mut request = c.start(&mut r).unwrap();
            for _ in 0..stage {
                let response = d.handle_handshake(&request, &mut r).unwrap();
                match c.handle_response(&response, &mut r).unwrap() {
                    Some(next) => request = next,
                    None => break,
                }
            }
            if d.handle_handshake(&garbage, &mut r).is_err() {
                prop_assert!(!d.is_established() || device.version().number() == 0);
            }
            let _ = c.handle_response(&garbage, &mut r);
            let _ = d.decrypt(&mut garbage.clone());
            let _ = c.decrypt(&mut garbage.clone());
        }
    }
}
