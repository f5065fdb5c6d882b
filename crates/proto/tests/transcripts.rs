//! Every esp_prov transcript in `tests/vectors/esp_prov-sessions`, replayed byte for byte from the device side
//! (with the device's fixed randomness) and from the client side (with esp_prov's).

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{Peer, SessionId, names};
use wifiprov_proto::security::{ClientSecurity, ClientSession, DeviceSecurity, Sec2Patch, Sec2Verifier};
use wifiprov_proto::version::VersionInfo;
use wifiprov_testkit::transcript::{exchanges, plaintext, scripted_device};
use wifiprov_testkit::{ScriptedRandom, block_on, hex_field, unhex, vectors};

use crate::common::{sec1_client, sec1_device, sec2_client};

/// What one transcript needs: the device's configuration and secrets, and how to build the client for a run.
struct Scheme {
    device: DeviceSecurity,
    device_random: Vec<u8>,
    client_random: Vec<u8>,
    client: fn(&str) -> ClientSecurity,
}

/// The value following `flag` in an esp_prov command line.
fn flag<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = command.split_whitespace();
    words.by_ref().find(|w| *w == flag)?;
    words.next()
}

fn replay_device(scheme: &Scheme, run: &Value) {
    let name = run["name"].as_str().unwrap();
    let sec0 = scheme.device.version().number() == 0;
    let mut pc = scripted_device(scheme.device.clone(), "{}", run, sec0);
    let mut rng = ScriptedRandom::new([&scheme.device_random]);
    let session = SessionId(7);
    let now = Instant::now();
    // The id is fixed here, so the device draws only what the vector gives it (the HTTP replay covers the draw).
    let _ = pc.open_session(session, Peer::new(1), now).unwrap();
    let mut rejected = false;
    for e in exchanges(run) {
        let endpoint = e["endpoint"].as_str().unwrap();
        let request = hex_field(e, "request_hex");
        let result =
            block_on(pc.handle(now, Peer::new(1), Some(session), endpoint, &request, &mut rng)).map(|(_, reply)| reply);
        match e["response_hex"].as_str() {
            None => {
                assert!(result.is_err(), "{name}: device accepted a request the reference device rejected");
                rejected = true;
            }
            // The reference device's proto-ver is compact JSON; ours is ESP's cJSON layout (tested elsewhere).
            Some(_) if endpoint == names::PROTO_VER => {}
            Some(expected) => {
                let got = result.unwrap_or_else(|err| panic!("{name}: {endpoint} seq {}: {err:#?}", e["seq"]));
                assert_eq!(hex::encode(got), expected, "{name}: {endpoint} seq {} response differs", e["seq"]);
            }
        }
    }
    if !rejected {
        assert_eq!(rng.remaining(), 0, "{name}: device drew a different amount of randomness than the vector");
    }
}

fn replay_client(scheme: &Scheme, run: &Value) {
    let name = run["name"].as_str().unwrap();
    let command = run["esp_prov_command"].as_str().unwrap();
    let sec0 = scheme.device.version().number() == 0;
    let mut client = ClientSession::new((scheme.client)(command));
    let mut rng = ScriptedRandom::new([&scheme.client_random]);
    let mut next: Option<Vec<u8>> = None;
    for e in exchanges(run) {
        let endpoint = e["endpoint"].as_str().unwrap();
        let request = hex_field(e, "request_hex");
        let response = e["response_hex"].as_str().map(unhex);
        match endpoint {
            names::PROTO_VER => {
                // The proto-ver reply is plain JSON that any client must parse.
                VersionInfo::parse(&response.unwrap()).unwrap();
            }
            names::PROV_SESSION => {
                let ours = match next.take() {
                    Some(request) => request,
                    None => client.start(&mut rng).unwrap(),
                };
                assert_eq!(hex::encode(&ours), hex::encode(&request), "{name}: handshake request differs");
                let Some(response) = response else { break };
                next = client.handle_response(&response, &mut rng).unwrap();
            }
            _ => {
                let mut body = plaintext(e, "request", sec0).unwrap();
                client.encrypt(&mut body).unwrap();
                assert_eq!(hex::encode(&body), hex::encode(&request), "{name}: {endpoint} ciphertext differs");
                let mut reply = response.unwrap();
                client.decrypt(&mut reply).unwrap();
                assert_eq!(reply, plaintext(e, "response", sec0).unwrap(), "{name}: {endpoint} plaintext differs");
            }
        }
    }
    let failed = exchanges(run).iter().any(|e| e["response_hex"].is_null());
    assert_eq!(client.is_established(), !failed, "{name}: client established state");
    assert_eq!(rng.remaining(), 0, "{name}: client drew a different amount of randomness than esp_prov");
}

fn replay_all(scheme: &Scheme, runs: &Value) {
    let runs = runs.as_array().unwrap();
    assert!(!runs.is_empty());
    for run in runs {
        replay_device(scheme, run);
        replay_client(scheme, run);
    }
}

#[test]
fn sec0_transcripts() {
    let file = vectors("esp_prov-sessions/sec0.json");
    let scheme = Scheme {
        device: danger::sec0(),
        device_random: vec![],
        client_random: vec![],
        client: |_| ClientSecurity::sec0(),
    };
    replay_all(&scheme, &file["runs"]);
}

#[test]
fn sec1_transcripts() {
    let file = vectors("esp_prov-sessions/sec1.json");
    let pop = file["pop"].as_str().unwrap();
    let scheme = Scheme {
        device: sec1_device(pop),
        device_random: [hex_field(&file, "device_private_key"), hex_field(&file, "device_random")].concat(),
        client_random: hex_field(&file, "client_private_key"),
        client: |command| sec1_client(flag(command, "--pop").unwrap()),
    };
    replay_all(&scheme, &file["runs"]);
}

fn sec2_scheme(params: &Value, variant: &Value, patch: Sec2Patch) -> Scheme {
    let verifier = Sec2Verifier::new(&hex_field(params, "salt"), &hex_field(params, "verifier")).unwrap();
    let nonce = hex_field(variant, "device_nonce");
    // With the counter rule only the 8-byte prefix is random; the counter always starts at 1.
    let nonce_random = match patch {
        Sec2Patch::Counter => nonce[..8].to_vec(),
        _ => nonce,
    };
    Scheme {
        device: DeviceSecurity::sec2(Arc::new(verifier), patch),
        device_random: [hex_field(params, "device_b"), nonce_random].concat(),
        client_random: hex_field(params, "client_a_urandom"),
        client: match patch {
            Sec2Patch::Counter => |command| {
                assert_eq!(flag(command, "--sec2_username"), Some("wifiprov"));
                sec2_client(flag(command, "--sec2_pwd").unwrap(), Sec2Patch::Counter)
            },
            _ => |command| sec2_client(flag(command, "--sec2_pwd").unwrap(), Sec2Patch::Legacy),
        },
    }
}

#[test]
fn sec2_transcripts_patch_1() {
    let file = vectors("esp_prov-sessions/sec2.json");
    let variant = &file["variants"]["sec_patch_ver_1"];
    replay_all(&sec2_scheme(&file, variant, Sec2Patch::Counter), &variant["runs"]);
}

#[test]
fn sec2_transcripts_patch_0() {
    let file = vectors("esp_prov-sessions/sec2.json");
    let variant = &file["variants"]["sec_patch_ver_0"];
    replay_all(&sec2_scheme(&file, variant, Sec2Patch::Legacy), &variant["runs"]);
}

#[test]
fn sec2_transcripts_short_b_and_short_s() {
    let file = vectors("esp_prov-sessions/sec2_edge_cases.json");
    let cases = file["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 2);
    for case in cases.values() {
        assert_eq!(case["sec_patch_ver"], 1);
        replay_all(&sec2_scheme(case, case, Sec2Patch::Counter), &case["runs"]);
    }
}
