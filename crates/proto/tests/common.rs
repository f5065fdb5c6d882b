//! Helpers shared by the test modules.

use std::sync::Arc;

use wifiprov_proto::rng::SecureRandom;
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSecurity, DeviceSession, Sec2Patch, Sec2Verifier};
use wifiprov_testkit::{hex_field, vectors};

pub(crate) const USERNAME: &str = "wifiprov";
pub(crate) const PASSWORD: &str = "abcd1234";

/// ESP's own test salt and verifier for wifiprov / abcd1234.
pub(crate) fn esp_test_verifier() -> Arc<Sec2Verifier> {
    let v = &vectors("esp-security-vectors.json")["sec2"];
    Arc::new(Sec2Verifier::new(&hex_field(v, "salt"), &hex_field(v, "verifier")).unwrap())
}

pub(crate) fn sec2_device(patch: Sec2Patch) -> DeviceSecurity {
    DeviceSecurity::sec2(esp_test_verifier(), patch)
}

pub(crate) fn sec2_client(password: &str, patch: Sec2Patch) -> ClientSecurity {
    ClientSecurity::sec2(USERNAME, Password::from(password), patch)
}

pub(crate) fn sec1_device(pop: &str) -> DeviceSecurity {
    DeviceSecurity::sec1(ProofOfPossession::from(pop))
}

pub(crate) fn sec1_client(pop: &str) -> ClientSecurity {
    ClientSecurity::sec1(ProofOfPossession::from(pop))
}

/// Runs a whole handshake in memory; returns the established pair.
pub(crate) fn handshake(
    device: &DeviceSecurity,
    client: ClientSecurity,
    rng: &mut dyn SecureRandom,
) -> (DeviceSession, ClientSession) {
    let mut d = DeviceSession::new(device);
    let mut c = ClientSession::new(client);
    let mut request = c.start(rng).unwrap();
    loop {
        let response = d.handle_handshake(&request, rng).unwrap();
        match c.handle_response(&response, rng).unwrap() {
            Some(next) => request = next,
            None => break,
        }
    }
    assert!(d.is_established() && c.is_established());
    (d, c)
}
