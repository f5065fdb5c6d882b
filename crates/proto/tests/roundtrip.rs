//! Client ↔ device round trips for every scheme and patch level with fresh random keys.

use wifiprov_proto::danger;
use wifiprov_proto::rng::SecureRandom;
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{ClientSecurity, DeviceSecurity, Sec2Patch};
use wifiprov_testkit::SeededRandom;

use crate::common::{PASSWORD, handshake, sec1_client, sec1_device, sec2_client, sec2_device};

/// Handshakes with a fresh seed each time, then messages of varied lengths in both directions, checking that
/// both directions decrypt and that ciphertext differs from plaintext where there is a cipher.
fn exercise(device: &DeviceSecurity, client: impl Fn() -> ClientSecurity, iterations: u64, encrypted: bool) {
    for seed in 0..iterations {
        let mut rng = SeededRandom::new(seed);
        let (mut d, mut c) = handshake(device, client(), &mut rng);
        for round in 0..6usize {
            let mut request = vec![0u8; (round * 37 + seed as usize) % 300 + 1];
            rng.fill(&mut request).unwrap();
            let mut wire = request.clone();
            c.encrypt(&mut wire).unwrap();
            assert_eq!(wire != request, encrypted || wire.len() != request.len());
            d.decrypt(&mut wire).unwrap();
            assert_eq!(wire, request);

            let mut response = request.iter().rev().copied().collect::<Vec<_>>();
            let mut wire = response.clone();
            d.encrypt(&mut wire).unwrap();
            c.decrypt(&mut wire).unwrap();
            assert_eq!(wire, std::mem::take(&mut response));
        }
    }
}

#[test]
fn sec0() {
    exercise(&danger::sec0(), ClientSecurity::sec0, 3, false);
}

#[test]
fn sec1_with_pop() {
    exercise(&sec1_device("abcd1234"), || sec1_client("abcd1234"), 100, true);
}

#[test]
fn sec1_without_pop() {
    // A device with no PoP (advertises no_pop) and esp_prov's empty --pop agree.
    exercise(&danger::sec1_without_pop(), || sec1_client(""), 50, true);
    // An empty PoP on the device also means no hash mixing.
    exercise(&DeviceSecurity::sec1(ProofOfPossession::from("")), || sec1_client(""), 20, true);
}

#[test]
fn sec2_patch_1() {
    exercise(&sec2_device(Sec2Patch::Counter), || sec2_client(PASSWORD, Sec2Patch::Counter), 40, true);
}

#[test]
fn sec2_patch_0() {
    exercise(&sec2_device(Sec2Patch::Legacy), || sec2_client(PASSWORD, Sec2Patch::Legacy), 20, true);
}

#[test]
fn sec2_with_generated_credentials() {
    use std::sync::Arc;
    use wifiprov_proto::secret::Password;
    use wifiprov_proto::security::{Sec2Verifier, generate_salt_verifier};
    for seed in 0..20 {
        let mut rng = SeededRandom::new(1000 + seed);
        let username = format!("user-{seed}");
        let password = Password::from(format!("password {seed} ✓"));
        let creds = generate_salt_verifier(username.as_bytes(), &password, 16, &mut rng).unwrap();
        assert_eq!(creds.salt.len(), 16);
        assert_ne!(creds.salt[0], 0, "a zero first salt byte breaks esp_prov");
        let device = DeviceSecurity::sec2(
            Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap()),
            Sec2Patch::Counter,
        );
        handshake(&device, ClientSecurity::sec2(username, password, Sec2Patch::Counter), &mut rng);
    }
}

#[test]
fn generated_salt_never_starts_with_zero() {
    use wifiprov_proto::secret::Password;
    use wifiprov_proto::security::generate_salt_verifier;
    // A source whose first bytes are zero: the generator must redraw the first salt byte.
    let mut rng = wifiprov_testkit::ScriptedRandom::new([vec![0u8; 16], vec![0, 0, 0x42]]);
    let creds = generate_salt_verifier(b"wifiprov", &Password::from("abcd1234"), 16, &mut rng).unwrap();
    assert_eq!(creds.salt[0], 0x42);
    assert_eq!(rng.remaining(), 0);
    assert!(!format!("{creds:?}").contains(&hex::encode(&creds.verifier)));
}
