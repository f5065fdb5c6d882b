//! The compact vectors of `tests/vectors/esp-security-vectors.json` (fact sheet §10.2), byte for byte.

use wifiprov_proto::danger;
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSession, Sec2Patch};
use wifiprov_testkit::{ScriptedRandom, hex_field, vectors};

use crate::common::{PASSWORD, USERNAME, sec1_client, sec1_device, sec2_client, sec2_device};

#[test]
fn sec0_bytes() {
    let v = &vectors("esp-security-vectors.json")["sec0"];
    let mut rng = ScriptedRandom::default();
    let mut device = DeviceSession::new(&danger::sec0());
    assert_eq!(device.handle_handshake(&hex_field(v, "cmd_bytes"), &mut rng).unwrap(), hex_field(v, "resp_bytes"));
    let mut client = ClientSession::new(ClientSecurity::sec0());
    assert_eq!(client.start(&mut rng).unwrap(), hex_field(v, "cmd_bytes"));
    assert_eq!(client.handle_response(&hex_field(v, "resp_bytes"), &mut rng).unwrap(), None);
    assert!(client.is_established() && device.is_established());
}

#[test]
fn sec1_device_side() {
    let v = &vectors("esp-security-vectors.json")["sec1"];
    assert_eq!(v["pop"], "abcd1234");
    let mut rng = ScriptedRandom::new([hex_field(v, "device_priv"), hex_field(v, "device_random")]);
    let mut device = DeviceSession::new(&sec1_device("abcd1234"));
    assert_eq!(device.handle_handshake(&hex_field(v, "cmd0_bytes"), &mut rng).unwrap(), hex_field(v, "resp0_bytes"));
    assert!(!device.is_established());
    assert_eq!(device.handle_handshake(&hex_field(v, "cmd1_bytes"), &mut rng).unwrap(), hex_field(v, "resp1_bytes"));
    assert!(device.is_established());
    assert_eq!(rng.remaining(), 0);

    let mut request = hex_field(v, "req1_cipher");
    device.decrypt(&mut request).unwrap();
    assert_eq!(request, hex_field(v, "req1_plain"));
    let mut response = hex_field(v, "resp1_plain");
    device.encrypt(&mut response).unwrap();
    assert_eq!(response, hex_field(v, "resp1_cipher"));
}

#[test]
fn sec1_client_side() {
    let v = &vectors("esp-security-vectors.json")["sec1"];
    let mut rng = ScriptedRandom::new([hex_field(v, "client_priv")]);
    let mut client = ClientSession::new(sec1_client("abcd1234"));
    assert_eq!(client.start(&mut rng).unwrap(), hex_field(v, "cmd0_bytes"));
    let cmd1 = client.handle_response(&hex_field(v, "resp0_bytes"), &mut rng).unwrap();
    assert_eq!(cmd1, Some(hex_field(v, "cmd1_bytes")));
    assert_eq!(client.handle_response(&hex_field(v, "resp1_bytes"), &mut rng).unwrap(), None);
    assert!(client.is_established());

    let mut request = hex_field(v, "req1_plain");
    client.encrypt(&mut request).unwrap();
    assert_eq!(request, hex_field(v, "req1_cipher"));
    let mut response = hex_field(v, "resp1_cipher");
    client.decrypt(&mut response).unwrap();
    assert_eq!(response, hex_field(v, "resp1_plain"));
}

#[test]
fn sec2_device_side() {
    let v = &vectors("esp-security-vectors.json")["sec2"];
    assert_eq!((v["username"].as_str(), v["password"].as_str()), (Some(USERNAME), Some(PASSWORD)));
    let nonce = hex_field(v, "device_nonce");
    let mut rng = ScriptedRandom::new([hex_field(v, "b"), nonce[..8].to_vec()]);
    let mut device = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
    assert_eq!(device.handle_handshake(&hex_field(v, "cmd0_bytes"), &mut rng).unwrap(), hex_field(v, "resp0_bytes"));
    assert_eq!(device.handle_handshake(&hex_field(v, "cmd1_bytes"), &mut rng).unwrap(), hex_field(v, "resp1_bytes"));
    assert!(device.is_established());
    assert_eq!(rng.remaining(), 0);

    let mut request = hex_field(v, "req1_cipher");
    device.decrypt(&mut request).unwrap();
    assert_eq!(request, hex_field(v, "req1_plain"));
    let mut response = hex_field(v, "resp1_plain");
    device.encrypt(&mut response).unwrap();
    assert_eq!(response, hex_field(v, "resp1_cipher"));
}

#[test]
fn sec2_client_side() {
    let v = &vectors("esp-security-vectors.json")["sec2"];
    let mut rng = ScriptedRandom::new([hex_field(v, "a")]);
    let mut client = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
    assert_eq!(client.start(&mut rng).unwrap(), hex_field(v, "cmd0_bytes"));
    let cmd1 = client.handle_response(&hex_field(v, "resp0_bytes"), &mut rng).unwrap();
    assert_eq!(cmd1, Some(hex_field(v, "cmd1_bytes")));
    assert_eq!(client.handle_response(&hex_field(v, "resp1_bytes"), &mut rng).unwrap(), None);

    let mut request = hex_field(v, "req1_plain");
    client.encrypt(&mut request).unwrap();
    assert_eq!(request, hex_field(v, "req1_cipher"));
    let mut response = hex_field(v, "resp1_cipher");
    client.decrypt(&mut response).unwrap();
    assert_eq!(response, hex_field(v, "resp1_plain"));
}

/// The edge-case b values give a 383-byte B (sent short, padded only inside u) and a 383-byte S (hashed short
/// into K): the device must send exactly the short B, and the client must accept it and agree on K.
#[test]
fn sec2_short_b_and_short_s() {
    let base = &vectors("esp-security-vectors.json")["sec2"];
    let edges = vectors("esp-security-edge-vectors.json");
    for case in ["short_B", "short_S"] {
        let v = &edges[case];
        let b = hex_field(v, "B");
        assert_eq!(b.len() as u64, v["B_len"].as_u64().unwrap());
        let mut rng = ScriptedRandom::new([hex_field(base, "a"), hex_field(v, "b"), vec![9; 8]]);
        let mut device = DeviceSession::new(&sec2_device(Sec2Patch::Counter));
        let mut client = ClientSession::new(sec2_client(PASSWORD, Sec2Patch::Counter));
        let cmd0 = client.start(&mut rng).unwrap();
        let resp0 = device.handle_handshake(&cmd0, &mut rng).unwrap();
        // The response ends with the salt field (0x1a 0x10 + 16 bytes); B precedes it verbatim.
        let salt = hex_field(base, "salt");
        let tail = [&[0x1a, 0x10][..], &salt].concat();
        assert!(resp0.ends_with(&tail), "{case}: salt not last");
        let b_end = resp0.len() - tail.len();
        assert_eq!(&resp0[b_end - b.len()..b_end], &b[..], "{case}: B not sent minimal");
        let cmd1 = client.handle_response(&resp0, &mut rng).unwrap().unwrap();
        assert!(cmd1.ends_with(&hex_field(v, "M1")), "{case}: M1 differs");
        let resp1 = device.handle_handshake(&cmd1, &mut rng).unwrap();
        let m2 = hex_field(v, "M2");
        assert!(resp1.windows(m2.len()).any(|w| w == m2), "{case}: M2 differs");
        assert_eq!(client.handle_response(&resp1, &mut rng).unwrap(), None);
    }
}
