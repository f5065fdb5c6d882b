//! The esp_prov transcripts in `tests/vectors/esp_prov-sessions`, replayed over a raw TCP connection with
//! esp_prov's exact request lines, headers (in its order, its cookie included) and bodies. The device runs with
//! the transcript's fixed randomness (session id first, then the handshake secrets), so every response must
//! match byte for byte.
//!
//! One deliberate difference: the reference device, like ESP, opens the session (and sets the cookie) on the
//! very first request, usually `proto-ver`; wifiprov opens sessions only on `prov-session`, so the same cookie
//! arrives with the first handshake answer. esp_prov already sends that cookie there (it learnt it from
//! `proto-ver`), which the device ignores because no such session is open yet; it draws the same id from the
//! scripted randomness, and from then on the exchange is identical.

use std::sync::Arc;

use serde_json::Value;
use wifiprov_proto::danger;
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{DeviceSecurity, Sec2Patch, Sec2Verifier};
use wifiprov_testkit::transcript::{exchanges, scripted_device};
use wifiprov_testkit::{ScriptedRandom, hex_field, vectors};
use wifiprov_transport_http::HttpConfig;

use crate::common::*;

/// The headers esp_prov (Python's http.client) sends, in its order.
const ESP_PROV_HEADERS: [&str; 6] = ["Host", "Accept-Encoding", "Content-Length", "Content-type", "Accept", "Cookie"];

/// The request exactly as esp_prov sent it.
fn esp_prov_request(exchange: &Value) -> Vec<u8> {
    let http = &exchange["http"];
    let headers = http["request_headers"].as_object().unwrap();
    for name in headers.keys() {
        assert!(ESP_PROV_HEADERS.contains(&name.as_str()), "unexpected header {name} in the transcript");
    }
    let mut text = format!("{}\r\n", http["request_line"].as_str().unwrap());
    for name in ESP_PROV_HEADERS {
        if let Some(value) = headers.get(name) {
            text.push_str(&format!("{name}: {}\r\n", value.as_str().unwrap()));
        }
    }
    text.push_str("\r\n");
    [text.into_bytes(), hex_field(exchange, "request_hex")].concat()
}

/// The session id the transcript's device drew, as the first four random bytes (big-endian).
fn cookie_random(file: &Value) -> [u8; 4] {
    let cookie = file["session_cookie"].as_str().unwrap();
    let id: u32 = cookie.strip_prefix("session=").unwrap().parse().unwrap();
    id.to_be_bytes()
}

async fn replay_run(security: DeviceSecurity, device_random: &[u8], file: &Value, version: &str, run: &Value) {
    let name = run["name"].as_str().unwrap();
    let sec0 = security.version().number() == 0;
    let pc = scripted_device(security, version, run, sec0);
    let rng = ScriptedRandom::new([cookie_random(file).as_slice(), device_random]);
    let server = Server::start_with(pc, Box::new(rng), HttpConfig::default()).await;
    let mut raw = server.raw().await;
    let mut cookie_sent = false;
    for e in exchanges(run) {
        let seq = &e["seq"];
        raw.send(&esp_prov_request(e)).await;
        let Some(expected) = e["response_hex"].as_str() else {
            // The reference device refused here: no HTTP response at all, then the close.
            raw.assert_closed_silently().await;
            return;
        };
        let response = raw.response().await;
        assert_eq!(response.status, 200, "{name} seq {seq}");
        assert_eq!(response.header("Content-Type"), Some("text/html"), "{name} seq {seq}");
        assert_eq!(hex::encode(&response.body), expected, "{name} seq {seq}: response body differs");
        let first_handshake_answer = e["endpoint"] == "prov-session" && !std::mem::replace(&mut cookie_sent, true);
        let expected_cookie = first_handshake_answer.then(|| file["session_cookie"].as_str().unwrap());
        assert_eq!(response.header("Set-Cookie"), expected_cookie, "{name} seq {seq}: Set-Cookie differs");
    }
    // The whole run used one keep-alive connection; it is still open and usable.
    raw.send(&esp_prov_request(&exchanges(run)[0])).await;
    assert_eq!(raw.response().await.status, 200, "{name}: connection not kept alive");
}

#[tokio::test]
async fn esp_prov_sec0_runs() {
    let file = vectors("esp_prov-sessions/sec0.json");
    let version = file["proto_ver_response"].as_str().unwrap();
    for run in file["runs"].as_array().unwrap() {
        replay_run(danger::sec0(), &[], &file, version, run).await;
    }
}

#[tokio::test]
async fn esp_prov_sec1_runs() {
    let file = vectors("esp_prov-sessions/sec1.json");
    let version = file["proto_ver_response"].as_str().unwrap();
    let pop = ProofOfPossession::from(file["pop"].as_str().unwrap());
    let random = [hex_field(&file, "device_private_key"), hex_field(&file, "device_random")].concat();
    let runs = file["runs"].as_array().unwrap();
    assert!(runs.len() >= 6);
    for run in runs {
        replay_run(DeviceSecurity::sec1(pop.clone()), &random, &file, version, run).await;
    }
}

#[tokio::test]
async fn esp_prov_sec2_runs() {
    let file = vectors("esp_prov-sessions/sec2.json");
    let variant = &file["variants"]["sec_patch_ver_1"];
    let version = variant["proto_ver_response"].as_str().unwrap();
    let verifier = Arc::new(Sec2Verifier::new(&hex_field(&file, "salt"), &hex_field(&file, "verifier")).unwrap());
    // With the counter nonce rule only the 8-byte prefix is random.
    let nonce = hex_field(variant, "device_nonce");
    let random = [hex_field(&file, "device_b"), nonce[..8].to_vec()].concat();
    for run in variant["runs"].as_array().unwrap() {
        let security = DeviceSecurity::sec2(verifier.clone(), Sec2Patch::Counter);
        replay_run(security, &random, &file, version, run).await;
    }
}
